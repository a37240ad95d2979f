"""Names of the benchmark cases (no imports, so ``run_all`` can read them before torch/JAX start)."""

#: Our estimators, each timed through both adapters (the names of ``shared_math.ESTIMATORS``,
#: spelled out so that reading them imports no array library; ``tests`` check they agree).
ESTIMATORS = ("implicit", "hybrid", "rao_blackwell")
TORCH_CASES = ("floor",) + ESTIMATORS + ("pyro_mdn",)
JAX_CASES = ("floor",) + ESTIMATORS + ("tfp",)
