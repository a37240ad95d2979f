"""The base of the mixture autoguides (private)."""

from __future__ import annotations

from typing import NoReturn

import jax
from numpyro.infer.autoguide import AutoContinuous


class _MixtureAutoContinuous(AutoContinuous):
    """What the mixture autoguides share: a mixture posterior is not an affine transform of a
    fixed base distribution (the component choice is discrete)."""

    def get_base_dist(self) -> NoReturn:
        raise NotImplementedError("A mixture posterior is not an affine transform of a fixed base distribution")

    def get_transform(self, params: dict[str, jax.Array]) -> NoReturn:
        raise NotImplementedError("A mixture posterior is not an affine transform of a fixed base distribution")
