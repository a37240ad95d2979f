"""The curated mutants: plausible one-edit bugs of the maths, the adapters and the objectives.

Each :class:`Mutant` replaces one exact ``original`` snippet (it must occur exactly once in
``path``) by ``replacement``.  ``focus`` lists the tests most likely to catch it; the harness
runs them first and the whole fast suite only if they pass, so a killed mutant costs
seconds and a survivor is still run against everything.

Keep the list current: when code moves or changes, update the snippet (``make mutants``
reports a snippet it cannot find as "stale", and ``tests/test_mutants_list.py`` fails).  When
a feature lands (component families, full covariance, sampled CDF gradients, the stratified
objective), add mutants of its maths and its adapters here.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    path: str
    original: str
    replacement: str
    description: str
    focus: tuple = ()
    #: Why the fast suite cannot or need not kill it, if it survives (shown in the table).
    note: str = ""


GRADIENT_TESTS = ("tests/test_shared_math_gradients.py", "tests/test_float32_identities.py")

MUTANTS = [
    # ------------------------------------------------------------------ shared_math: gradients
    Mutant(
        "vjp-no-mu-correction",
        "shared_math/estimators.py",
        "        locs_bar = locs_bar + largest * xp.expand_dims(correction, axis=1)\n",
        "",
        "implicit_vjp without the mu_bar correction of the most responsible component (issue 18 #1)",
        ("tests/test_float32_identities.py",),
    ),
    Mutant(
        "ties-take-full-correction",
        "shared_math/_sweeps.py",
        "return a_scaled - largest_weight * (xp.sum(a_scaled, axis=1, keepdims=True) / ties)",
        "return a_scaled - largest_weight * xp.sum(a_scaled, axis=1, keepdims=True)",
        "each tied largest weight takes the whole a~ correction instead of 1/m of it (issue 18 #2)",
        ("tests/test_float32_identities.py",),
    ),
    Mutant(
        "reverse-sweep-sign",
        "shared_math/_sweeps.py",
        "u_i = g_i + xp.sum(neg_gamma_i * carry, axis=0)",
        "u_i = g_i - xp.sum(neg_gamma_i * carry, axis=0)",
        "reverse sweep: gamma = +z/sigma instead of -z/sigma",
        GRADIENT_TESTS,
    ),
    Mutant(
        "forward-sweep-sign",
        "shared_math/_sweeps.py",
        "x_dot_d = -t_d - xp.sum(a_d * carry, axis=0)",
        "x_dot_d = -t_d + xp.sum(a_d * carry, axis=0)",
        "forward sweep: wrong sign of the off-diagonal term",
        GRADIENT_TESTS,
    ),
    Mutant(
        "scales-bar-carry-sign",
        "shared_math/estimators.py",
        "scales_bar = z * locs_bar + carry * inv_scales",
        "scales_bar = z * locs_bar - carry * inv_scales",
        "implicit_vjp: sigma_bar = z mu_bar - E/sigma",
        GRADIENT_TESTS,
    ),
    Mutant(
        "logits-bar-sign",
        "shared_math/estimators.py",
        "        layout.weights_parameter(-final_carry, logits.shape),\n"
        "    )\n"
        "    return _with_shape(result, cdf, shape_bars)\n",
        "        layout.weights_parameter(final_carry, logits.shape),\n"
        "    )\n"
        "    return _with_shape(result, cdf, shape_bars)\n",
        "implicit_vjp: logits_bar with the wrong sign",
        GRADIENT_TESTS,
    ),
    Mutant(
        "conditional-weights-not-shifted",
        "shared_math/_sweeps.py",
        "        responsibilities[:-1, ...],\n",
        "        responsibilities[1:, ...],\n",
        "sweep terms: w_kd = r_kd instead of r_{k,d-1} (conditional weights one dimension late)",
        GRADIENT_TESTS,
    ),
    Mutant(
        "tail-side-swapped",
        "shared_math/_sweeps.py",
        "above = xp.clip(sign, min=0.0)  # 1 where t_kd = 1 - G(z_kd)",
        "above = xp.clip(-sign, min=0.0)  # 1 where t_kd = 1 - G(z_kd)",
        "sweep terms: the two CDF tails swapped",
        GRADIENT_TESTS,
    ),
    Mutant(
        "jvp-scales-term",
        "shared_math/_sweeps.py",
        "log_joint_dot = log_joint_dot + (z * terms.neg_score - 1.0) * terms.inv_scales * scales_dot",
        "log_joint_dot = log_joint_dot + (z * terms.neg_score + 1.0) * terms.inv_scales * scales_dot",
        "implicit_jvp: d log N / d sigma = (z^2 + 1)/sigma",
        GRADIENT_TESTS,
    ),
    Mutant(
        "rao-blackwell-scales-without-z",
        "shared_math/estimators.py",
        "layout.parameter(locs_bar * terms.z[start:stop, ...], event_block_shape(scales.shape, start, stop))",
        "layout.parameter(locs_bar, event_block_shape(scales.shape, start, stop))",
        "rao_blackwell_vjp: sigma_bar = r g instead of r z g",
        ("tests/test_shared_math_rao_blackwell.py",),
    ),
    Mutant(
        "rao-blackwell-jvp-scales-without-z",
        "shared_math/estimators.py",
        "        velocity = terms.z if location_velocities is None else location_velocities[1]\n",
        "        velocity = 1.0 if location_velocities is None else location_velocities[1]\n",
        "rao_blackwell_jvp: x_dot = r sigma_dot instead of r z sigma_dot (NumPyro's path)",
        ("tests/test_shared_math_rao_blackwell.py", "tests/test_numpyro_gradients.py"),
    ),
    Mutant(
        "chosen-component-scales-without-noise",
        "shared_math/estimators.py",
        "scales_bar = locs_bar * noise[..., None, :]",
        "scales_bar = locs_bar",
        "hybrid: sigma_bar of the chosen component without the noise factor",
        ("tests/test_shared_math_gradients.py", "tests/test_pyro_distribution.py"),
    ),
    Mutant(
        "auto-means-implicit",
        "shared_math/estimators.py",
        "        return AUTO_ESTIMATOR\n",
        '        return "implicit"\n',
        '"auto" resolves to "implicit" instead of the measured default',
        ("tests/test_estimator_default.py",),
    ),
    Mutant(
        "density-clip-tighter",
        "shared_math/_sweeps.py",
        "bound = 0.9 * math.log(float(xp.finfo(tail.dtype).max))",
        "bound = 0.5 * math.log(float(xp.finfo(tail.dtype).max))",
        "sweep terms: f and w/f clipped at exp(+-0.5 log max) (+-44 in float32) instead of 0.9",
        ("tests/test_shared_math_float32.py", "tests/test_float32_identities.py"),
    ),
    # ------------------------------------------------------------------ shared_math: mixture
    Mutant(
        "log-prob-unnormalised-weights",
        "shared_math/mixture.py",
        "return logsumexp(log_softmax(logits, xp) + _summed_log_density(x, locs, scales, xp, family, shape_params), -1, xp)",
        "return logsumexp(logits + _summed_log_density(x, locs, scales, xp, family, shape_params), -1, xp)",
        "log_prob with the logits as log weights (no softmax normalisation)",
        ("tests/test_shared_math_values.py", "tests/conformance"),
    ),
    Mutant(
        "log-prob-offsets-not-broadcast",
        "shared_math/mixture.py",
        "offsets = xp.broadcast_to(offsets, tuple(offsets.shape[:-1]) + (x.shape[-1],))",
        "offsets = offsets",
        "log_prob's log-scale terms summed once, not D times, when scales broadcast over the event",
        ("tests/test_shared_math_values.py", "tests/conformance", "tests/test_pyro_distribution.py"),
    ),
    Mutant(
        "logsumexp-native-unguarded",
        "shared_math/mixture.py",
        "out = native(xp.clip(values, min=-float(xp.finfo(values.dtype).max)), axis, True)",
        "out = native(values, axis, True)",
        "the native logsumexp fed rows of -inf (NaN gradients there)",
        ("tests/test_shared_math_values.py",),
    ),
    Mutant(
        "variance-scales-not-squared",
        "shared_math/mixture.py",
        "return xp.sum(pi * (scales * scales * family.standard_variance(shape_params, xp) + centred * centred), axis=-2)",
        "return xp.sum(pi * (scales * family.standard_variance(shape_params, xp) + centred * centred), axis=-2)",
        "variance with sigma instead of sigma^2",
        ("tests/test_shared_math_values.py", "tests/conformance"),
    ),
    Mutant(
        "conditional-weights-inclusive",
        "shared_math/mixture.py",
        "log_joint_before = log_pi[..., None] + exclusive_cumsum(log_density, xp)",
        "log_joint_before = log_pi[..., None] + xp.cumulative_sum(log_density, axis=-1)",
        "conditional weights include dimension d itself (inclusive instead of exclusive sum)",
        ("tests/test_shared_math_values.py",),
    ),
    # ------------------------------------------------------------------ shared_math: checks, quantiles, backend
    Mutant(
        "zero-scale-accepted",
        "shared_math/validation.py",
        "if bool(xp.any(~(scales > 0))) or bool(xp.any(~xp.isfinite(scales))):",
        "if bool(xp.any(~(scales >= 0))) or bool(xp.any(~xp.isfinite(scales))):",
        "validation accepts scales = 0",
        ("tests/test_shared_math_validation.py",),
    ),
    Mutant(
        "logits-size-unchecked",
        "shared_math/validation.py",
        "    if logits_shape[-1] != num_components:\n",
        "    if False:\n",
        "mixture_shapes does not check that logits has K entries",
        ("tests/test_shared_math_validation.py",),
    ),
    Mutant(
        "guide-zero-init-scale",
        "shared_math/validation.py",
        "if scale is None or not math.isfinite(scale) or not scale > 0:",
        "if scale is None or not math.isfinite(scale) or scale < 0:",
        "autoguides accept init_scale = 0",
        ("tests/test_edge_cases.py",),
    ),
    Mutant(
        "quantile-bisection-direction",
        "shared_math/marginal_quantiles.py",
        "below = log_cdf(middle, locs_by_dim, scales_by_dim, logits_by_dim, xp=xp) < log_q",
        "below = log_cdf(middle, locs_by_dim, scales_by_dim, logits_by_dim, xp=xp) > log_q",
        "marginal quantile bisection moves the wrong end of the bracket",
        ("tests/test_edge_cases.py", "tests/test_pyro_inference.py"),
    ),
    Mutant(
        "quantile-bracket-narrow",
        "shared_math/marginal_quantiles.py",
        "BRACKET_HALF_WIDTH = 40.0",
        "BRACKET_HALF_WIDTH = 4.0",
        "quantile bracket of 4 component scales (far quantiles clipped to its edge)",
        ("tests/test_edge_cases.py", "tests/test_pyro_inference.py", "tests/test_numpyro_svi.py"),
    ),
    Mutant(
        "normal-tail-scale",
        "shared_math/families.py",
        'return 0.5 * special("erfc", xp)(clamped * _SQRT_HALF)',
        'return 0.5 * special("erfc", xp)(clamped)',
        "normal_tail: erfc(a) instead of erfc(a / sqrt 2)",
        GRADIENT_TESTS,
    ),
    Mutant(
        "gumbel-sweep-score-sign",
        "shared_math/families.py",
        "return 1.0 - xp.clip(decay, max=1.0 / math.sqrt(float(xp.finfo(decay.dtype).smallest_normal)))",
        "return xp.clip(decay, max=1.0 / math.sqrt(float(xp.finfo(decay.dtype).smallest_normal))) - 1.0",
        "the Gumbel score shared by the sweep terms with its sign flipped",
        ("tests/test_families.py",),
    ),
    Mutant(
        "dtype-first-wins",
        "shared_math/_backend.py",
        "    return xp.result_type(*floating)\n",
        "    return floating[0]\n",
        "parameter_dtype takes the first floating dtype instead of promoting",
        ("tests/test_edge_cases.py",),
    ),
    Mutant(
        "quantile-one-not-infinite",
        "shared_math/marginal_quantiles.py",
        "return xp.where(q == 1.0, xp.full_like(quantile, math.inf), quantile)",
        "return quantile",
        "quantile 1 gives NaN instead of +inf",
        ("tests/test_edge_cases.py",),
    ),
    Mutant(
        "tail-floor-tiny",
        "shared_math/families.py",
        "floor = math.e * smallest_normal",
        "floor = smallest_normal",
        "normal_tail clamps where Phi(-a) reaches tiny instead of e * tiny",
        GRADIENT_TESTS + ("tests/test_shared_math_float32.py",),
    ),
    # ------------------------------------------------------------------ shared_math: component families
    Mutant(
        "gumbel-tails-swapped",
        "shared_math/families.py",
        "tail = _split_by_sign(sign, exp_of_log(-decay, xp), -xp.expm1(-decay))",
        "tail = _split_by_sign(sign, -xp.expm1(-decay), exp_of_log(-decay, xp))",
        "Gumbel smaller tail: 1 - G below the median and G above it (the two tails swapped)",
        ("tests/test_families.py::test_standardized_functions_match_scipy",),
    ),
    Mutant(
        "student-t-central-front-factor",
        "shared_math/families.py",
        "- (log_constant + central * log_constant_central)",
        "- log_constant",
        "Student-t CDF: the central branch I_y(1/2, nu/2) divides its front factor by nu/2 instead of 1/2",
        ("tests/test_families.py::test_standardized_functions_match_scipy",),
    ),
    Mutant(
        "betainc-even-coefficient-sign",
        "shared_math/_special.py",
        "even = (m * (b - m)) / ((a + (2.0 * m - 1.0)) * (a + 2.0 * m))",
        "even = (m * (b + m)) / ((a + (2.0 * m - 1.0)) * (a + 2.0 * m))",
        "betainc continued fraction: d_2m = m(b+m)x/... instead of m(b-m)x/... (torch's betainc, every Student-t tail)",
        ("tests/test_families.py::test_array_api_betainc_matches_scipy",),
    ),
    Mutant(
        "log-gammainc-series-off-by-one",
        "shared_math/_special.py",
        "term = term * argument / (a + n)",
        "term = term * argument / (a + n - 1)",
        "log P(a, x) series: terms x^n / (a (a+1) ... (a+n-1)) instead of / ((a+1) ... (a+n))",
        ("tests/test_shape_families.py::test_log_space_tails_match_mpmath",),
    ),
    Mutant(
        "beta-score-constants-swapped",
        "shared_math/families.py",
        "return both - digamma(a), both - digamma(b)",
        "return both - digamma(b), both - digamma(a)",
        "Beta shape scores: the digamma constants of concentration1 and concentration0 swapped",
        (
            "tests/test_shape_families.py::test_shape_scores_match_finite_differences",
            "tests/test_shape_families.py::test_sampled_velocities_are_unbiased",
        ),
    ),
    # ------------------------------------------------------------------ shared_math: sampled CDF gradients
    Mutant(
        "sampled-larger-tail",
        "shared_math/sampled.py",
        "side = family.tail_side(z, shape, xp)",
        "side = -family.tail_side(z, shape, xp)",
        "sampled velocities integrate Eq. 9 over the larger tail instead of the smaller one",
        (
            "tests/test_shape_families.py::test_sampled_velocities_are_unbiased",
            "tests/test_shape_families.py::test_tail_sampler_beats_rejection_where_the_cdf_is_small",
        ),
    ),
    Mutant(
        "sampled-strata-collapsed",
        "shared_math/sampled.py",
        "xp.clip((uniform + index) / count,",
        "xp.clip(uniform / count,",
        "stratified uniforms: every inner draw in the first stratum [0, 1/M) (biased for M > 1)",
        ("tests/test_shape_families.py::test_sampled_velocities_are_unbiased",),
    ),
    Mutant(
        "rejection-accepts-above",
        "shared_math/sampled.py",
        "accepted = xp.astype(t <= z, z.dtype)",
        "accepted = xp.astype(t >= z, z.dtype)",
        "Graves' Eq. 9/10 estimator accepts the draws t >= z instead of t <= z",
        ("tests/test_shape_families.py::test_sampled_velocities_are_unbiased",),
    ),
    Mutant(
        "sampled-weight-capped-at-one",
        "shared_math/sampled.py",
        "weight = xp.exp(xp.clip(log_weight, max=bound))",
        "weight = xp.exp(xp.clip(log_weight, max=0.0))",
        "sampled velocities: importance weights g(t)/(g(z)q(t)) capped at 1 instead of at the overflow bound",
        ("tests/test_shape_families.py::test_sampled_velocities_are_unbiased",),
    ),
    # ------------------------------------------------------------------ shared_math: full covariance
    Mutant(
        "fc-whitening-residual-sign",
        "shared_math/full_covariance.py",
        "residuals = layout.point(x) - layout.locs(locs)  # (D, K, P, Q)",
        "residuals = layout.locs(locs) - layout.point(x)  # (D, K, P, Q)",
        "full covariance: eps = L^-1 (mu - x) (log_prob unchanged; the transform and every gradient wrong)",
        ("tests/test_full_covariance_shared_math.py::test_values_match_reference",),
    ),
    Mutant(
        "fc-log-weights-inclusive",
        "shared_math/full_covariance.py",
        "before = white.log_pi + _cumulative_over_event(white.log_normal, xp, exclusive=True)",
        "before = white.log_pi + _cumulative_over_event(white.log_normal, xp, exclusive=False)",
        "full covariance: conditional log weights w_kd include dimension d itself (inclusive sum)",
        ("tests/test_full_covariance_shared_math.py::test_values_match_reference",),
    ),
    Mutant(
        "fc-reverse-step-y-sign",
        "shared_math/full_covariance.py",
        "y = multiply_add(neg_h, u, responsibilities_i, xp)",
        "y = multiply_add(-neg_h, u, responsibilities_i, xp)",
        "full-covariance reverse sweep: y_ki = u_i r_ki + h_ki instead of - h_ki",
        ("tests/test_full_covariance_shared_math.py::test_implicit_vjp_and_jvp_match_full_jacobian",),
    ),
    Mutant(
        "fc-reverse-no-largest-correction",
        "shared_math/full_covariance.py",
        "    y = multiply_add(y, share_i, g_i - xp.sum(y, axis=1, keepdims=True), xp)\n",
        "",
        "full-covariance reverse sweep without the sum_k y_ki = g_i correction of the most responsible component",
        ("tests/test_full_covariance_shared_math.py::test_float32_locs_identity_on_random_hard_factors",),
    ),
    Mutant(
        "fc-forward-step-eta-sign",
        "shared_math/full_covariance.py",
        "eta = (x_dot - m_d) * inv_d",
        "eta = (x_dot + m_d) * inv_d",
        "full-covariance forward sweep: eta_kd = (x_dot_d + m_kd)/L_kdd instead of (x_dot_d - m_kd)/L_kdd",
        ("tests/test_full_covariance_shared_math.py::test_implicit_vjp_and_jvp_match_full_jacobian",),
    ),
    Mutant(
        "fc-rao-blackwell-jvp-without-eps",
        "shared_math/full_covariance.py",
        "moved = _moved_by(layout, locs_dot, scale_tril_dot, terms.eps, xp)",
        "moved = _moved_by(layout, locs_dot, scale_tril_dot, xp.ones_like(terms.eps), xp)",
        "full-covariance rao_blackwell_jvp: velocity r_k L_dot 1 instead of r_k L_dot eps_k (NumPyro's path)",
        (
            "tests/test_full_covariance_shared_math.py::test_jvp_is_transpose_of_vjp",
            "tests/test_full_covariance_shared_math.py::test_diagonal_factor_gives_diagonal_mixture_gradients",
        ),
    ),
    Mutant(
        "fc-tril-gradient-not-triangular",
        "shared_math/full_covariance.py",
        "    return xp.tril(matmul(_matrices(y, xp), xp.matrix_transpose(_matrices(eps, xp)), xp))\n",
        "    return matmul(_matrices(y, xp), xp.matrix_transpose(_matrices(eps, xp)), xp)\n",
        "full covariance: scale_tril_bar = y eps^T without tril (nonzero gradient of the unread upper triangle)",
        ("tests/test_full_covariance_shared_math.py::test_upper_triangle_is_not_read_and_gets_zero_gradient",),
    ),
    # ------------------------------------------------------------------ shared_math: stratification
    Mutant(
        "stratified-sum-unweighted",
        "shared_math/stratified.py",
        "    return xp.sum(xp.exp(log_weights) * term)\n",
        "    return xp.sum(term)\n",
        "stratified_sum: the grid terms summed without their weights prod_s pi_s",
        ("tests/test_shared_math_stratified.py",),
    ),
    Mutant(
        "stratified-dependence-not-followed",
        "shared_math/stratified.py",
        "    changed = True\n    while changed:\n",
        "    changed = False\n    while changed:\n",
        "term_log_weights: a term of a dependent site misses the weights of the sites its weights depend on",
        ("tests/test_shared_math_stratified.py",),
    ),
    Mutant(
        "stratified-pooling-check-off-by-one",
        "shared_math/stratified.py",
        "if axis in stratum_dims or shape[axis] == 1 or _size(term_shape, axis) > 1:",
        "if axis in stratum_dims or shape[axis] == 1 or _size(term_shape, axis) >= 1:",
        "term_log_weights never raises for a term that pools the plate elements of a stratified site",
        ("tests/test_shared_math_stratified.py",),
    ),
    # ------------------------------------------------------------------ Pyro adapter
    Mutant(
        "pyro-expand-drops-validate-args",
        "pyro_gmm/distribution.py",
        "        new._validate_args = self._validate_args\n",
        "",
        "Pyro DiagNormalMixture.expand drops validate_args (issue 18 #5)",
        ("tests/conformance",),
    ),
    Mutant(
        "pyro-guide-posterior-drops-estimator",
        "pyro_gmm/autoguide.py",
        "return DiagNormalMixture(self.locs, scales, self.logits, estimator=self.estimator)",
        "return DiagNormalMixture(self.locs, scales, self.logits)",
        "Pyro AutoDiagonalNormalMixture.get_posterior drops estimator (issue 18 #4)",
        ("tests/conformance",),
    ),
    Mutant(
        "pyro-backward-scales-gets-locs-bar",
        "pyro_gmm/distribution.py",
        "scales_bar if needs[2] else None, logits_bar",
        "locs_bar if needs[2] else None, logits_bar",
        "Pyro Function: the scales receive the locs gradient (same shape, silent)",
        ("tests/test_pyro_distribution.py",),
    ),
    Mutant(
        "pyro-swap-in-expand-drops-estimator",
        "pyro_gmm/mixture_same_family.py",
        "        new.estimator = self.estimator\n",
        "",
        "Pyro ReparamMixtureSameFamily.expand forgets the estimator",
        ("tests/conformance", "tests/test_pyro_mixture_same_family.py"),
    ),
    Mutant(
        "pyro-double-backward-detached",
        "pyro_gmm/distribution.py",
        "        if torch.is_grad_enabled():  # create_graph=True: let d(backward)/dtheta see x(theta)\n",
        "        if False:  # create_graph=True: let d(backward)/dtheta see x(theta)\n",
        "Pyro backward does not re-attach the saved x: second derivatives miss dx/dtheta",
        ("tests/test_pyro_distribution.py", "tests/test_edge_cases.py"),
    ),
    Mutant(
        "pyro-jvp-drops-logits",
        "pyro_gmm/distribution.py",
        "            scales_dot,\n            logits_dot,\n            **options,\n",
        "            scales_dot,\n            None,\n            **options,\n",
        "Pyro forward mode ignores the logits tangent",
        ("tests/test_edge_cases.py",),
    ),
    Mutant(
        "pyro-mvn-guide-posterior-drops-estimator",
        "pyro_gmm/full_covariance.py",
        "return MultivariateNormalMixture(self.locs, scale_tril, self.logits, estimator=self.estimator)",
        "return MultivariateNormalMixture(self.locs, scale_tril, self.logits)",
        "Pyro AutoMultivariateNormalMixture.get_posterior drops estimator",
        ("tests/test_full_covariance_pyro.py::test_autoguide_draws_with_its_estimator",),
    ),
    Mutant(
        "pyro-siwae-without-log-t",
        "pyro_gmm/objectives.py",
        "log_weight = torch.logsumexp(log_weight, dim=particle_dim) - math.log(self.num_particles)",
        "log_weight = torch.logsumexp(log_weight, dim=particle_dim)",
        "Pyro SIWAE (vectorized particles): log sum_t instead of log (1/T) sum_t (log T above the bound)",
        ("tests/test_stratified_pyro.py::test_siwae_is_tighter_than_the_elbo_and_converges_to_the_evidence",),
    ),
    Mutant(
        "pyro-siwae-sequential-without-log-t",
        "pyro_gmm/objectives.py",
        "log_weight = torch.logsumexp(stacked, dim=0) - math.log(len(log_weights))",
        "log_weight = torch.logsumexp(stacked, dim=0)",
        "Pyro SIWAE (vectorize_particles=False): log sum_t instead of log (1/T) sum_t",
        ("tests/test_stratified_pyro.py::test_vectorized_and_sequential_particles_agree",),
    ),
    # ------------------------------------------------------------------ NumPyro adapter
    Mutant(
        "numpyro-swap-in-expand-drops-estimator",
        "numpyro_gmm/distributions.py",
        "            self.component_distribution.expand(batch_shape + (num_components,)),\n"
        "            estimator=self.estimator,\n",
        "            self.component_distribution.expand(batch_shape + (num_components,)),\n",
        "NumPyro ReparamMixtureSameFamily.expand drops estimator (issue 18 #3)",
        ("tests/conformance",),
    ),
    Mutant(
        "numpyro-constants-unchecked-in-jit",
        "numpyro_gmm/distributions.py",
        "            _check_constant_parameters(locs, scales, logits)\n",
        "            pass\n",
        "NumPyro validate_args=True no longer checks constant parameters inside jit",
        ("tests/test_edge_cases.py",),
    ),
    Mutant(
        "numpyro-hybrid-drops-logits-tangent",
        "numpyro_gmm/_sampling.py",
        "        total = total + _tangent_in_chunks(\n            implicit,",
        "        total = total + 0.0 * _tangent_in_chunks(\n            implicit,",
        'NumPyro "hybrid": no implicit gradient for the logits',
        ("tests/test_numpyro_gradients.py", "tests/conformance"),
    ),
    Mutant(
        "numpyro-component-draw-reversed",
        "numpyro_gmm/_sampling.py",
        "component = jnp.sum(uniform >= cumulative, axis=-1)",
        "component = jnp.sum(uniform < cumulative, axis=-1)",
        "NumPyro component draw: the cumulative weights inverted in reverse order, the wrong distribution",
        ("tests/conformance", "tests/test_numpyro_montecarlo.py"),
    ),
    Mutant(
        "numpyro-guide-ignores-init-scale-in-spread",
        "numpyro_gmm/autoguide.py",
        "self._init_component_locs = self._init_latent + self._init_spread * self._init_scale * jnp.asarray(",
        "self._init_component_locs = self._init_latent + self._init_spread * jnp.asarray(",
        "NumPyro autoguide: initial offsets not scaled by init_scale (differs from Pyro)",
        ("tests/test_cross_framework.py", "tests/test_numpyro_svi.py"),
    ),
    Mutant(
        "numpyro-mvn-guide-drops-estimator",
        "numpyro_gmm/full_covariance.py",
        "return MultivariateNormalMixture(locs, scale_tril, logits, estimator=self.estimator)",
        "return MultivariateNormalMixture(locs, scale_tril, logits)",
        "NumPyro AutoMultivariateNormalMixture samples its latent with the default estimator, not the one given",
        ("tests/test_full_covariance_numpyro.py::test_autoguide_draws_with_its_estimator",),
    ),
    Mutant(
        "numpyro-siwae-mean-of-logs",
        "numpyro_gmm/objectives.py",
        "bound = logsumexp(estimates, axis=0) - math.log(self.num_particles)",
        "bound = jnp.mean(estimates, axis=0)",
        "NumPyro SIWAE averages the particles' log weights (an ELBO-like bound) instead of log-mean-exp",
        ("tests/test_stratified_numpyro.py::test_siwae_is_tighter_than_the_elbo_and_converges_to_the_evidence",),
    ),
    Mutant(
        "numpyro-chunk-padding-first",
        "numpyro_gmm/_sampling.py",
        "jnp.concatenate([flat, padding])",
        "jnp.concatenate([padding, flat])",
        "NumPyro sample chunks: the padding placed before the samples (tangents of the wrong samples kept)",
        ("tests/test_numpyro_chunks.py",),
    ),
    Mutant(
        "student-t-polar-exponent",
        "shared_math/families.py",
        "exponent = (-2.0 / df) * log_w",
        "exponent = (-1.0 / df) * log_w",
        "Bailey's polar Student-t: w^(-1/nu) instead of w^(-2/nu) (draws of the wrong distribution)",
        ("tests/test_families.py::test_polar_student_t_draws_follow_the_t_distribution",),
    ),
    Mutant(
        "arctan-reduction-offset",
        "shared_math/_special.py",
        "arctan_v = xp.where(reduced, math.pi / 6.0 + u * series, u * series)",
        "arctan_v = xp.where(reduced, math.pi / 6.0 - u * series, u * series)",
        "arctan(1/a) behind the JAX Cauchy tail: pi/6 - arctan(u) after the argument reduction",
        ("tests/test_families.py::test_arctan_of_reciprocal_matches_numpy",),
    ),
]
