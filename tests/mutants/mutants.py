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
        "u_i = g_i + xp.sum(neg_score_i * (inv_i * carry), axis=0)",
        "u_i = g_i - xp.sum(neg_score_i * (inv_i * carry), axis=0)",
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
        "sign, tail, _shift_in(weights_first, responsibilities, xp), log_density, largest_weight, xp",
        "sign, tail, responsibilities, log_density, largest_weight, xp",
        "sweep terms: w_kd = r_kd instead of r_{k,d-1} (conditional weights one dimension late)",
        GRADIENT_TESTS,
    ),
    Mutant(
        "tail-side-swapped",
        "shared_math/_sweeps.py",
        "below = 0.5 - 0.5 * sign  # 1 where z < 0",
        "below = 0.5 + 0.5 * sign  # 1 where z < 0",
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
        "return logsumexp(log_softmax(logits, xp) + xp.sum(log_density, axis=-1), -1, xp)",
        "return logsumexp(logits + xp.sum(log_density, axis=-1), -1, xp)",
        "log_prob with the logits as log weights (no softmax normalisation)",
        ("tests/test_shared_math_values.py", "tests/conformance"),
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
        "return DiagNormalMixture(self.locs, self.scales, self.logits, estimator=self.estimator)",
        "return DiagNormalMixture(self.locs, self.scales, self.logits)",
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
        "        total = total + shared_math.implicit_jvp(\n",
        "        total = total + 0.0 * shared_math.implicit_jvp(\n",
        'NumPyro "hybrid": no implicit gradient for the logits',
        ("tests/test_numpyro_gradients.py", "tests/conformance"),
    ),
    Mutant(
        "numpyro-gumbel-sign",
        "numpyro_gmm/_sampling.py",
        "component = jnp.argmax(jax.lax.stop_gradient(logits) + gumbel, axis=-1)",
        "component = jnp.argmax(jax.lax.stop_gradient(logits) - gumbel, axis=-1)",
        "NumPyro component draw: argmax(logits - Gumbel), the wrong distribution",
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
]
