r"""Generic distribution checks, run over one registry of every distribution class we ship.

A compact version of the generic checks that NumPyro (``test/test_distributions.py``) and
Pyro (``tests/distributions/``) run over their own distributions, applied to ours in both
adapters: shapes, support, ``expand``, settings kept by ``expand``/``to_event``/plates and
by the autoguides' posteriors, pytree/``jit``/``vmap`` (NumPyro), ``log_prob`` against a
float64 reference, mean and variance against samples, and the pathwise gradient of
:math:`E[x + x^2]` against its closed form with a tolerance set from the measured standard
error.

**Adding a class** is one :class:`~conformance.registry.Entry` in
:data:`conformance.registry.ENTRIES`: the ``Family`` that gives its parameters and float64
references (a location-scale family of ``scipy.stats`` is one call of
:func:`~conformance.registry.location_scale_family`) and one builder per adapter.  Every
check then runs on it.  Autoguides are one :class:`~conformance.registry.GuideEntry` in
:data:`conformance.registry.GUIDES`.
"""
