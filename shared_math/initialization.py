r"""Initial component locations for mixture guides: a fixed pattern that breaks the symmetry.

Components that start identical receive identical gradients and never separate, so the
autoguides of both adapters start component :math:`k` at
:math:`\zeta_0 + \texttt{init\_scale}\cdot\texttt{init\_spread}\cdot e_k`, with the
pattern :math:`e` from :func:`component_offsets` (the same numbers in Pyro and NumPyro).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def component_offsets(num_components: int, latent_dim: int, seed: int = 0) -> npt.NDArray[np.float64]:
    r"""Deterministic ``(K, latent_dim)`` NumPy float64 offsets.

    Standard normals from NumPy's PCG64 with ``seed``, centred over the components (so the
    mixture mean starts at the initial point) and rescaled to unit root-mean-square per
    coordinate; for ``K = 2`` the two components sit at :math:`\pm 1` in every coordinate.
    All zero when ``K = 1``.
    """
    if num_components == 1:
        return np.zeros((1, latent_dim))
    pattern = np.random.default_rng(seed).standard_normal((num_components, latent_dim))
    centred = pattern - np.mean(pattern, axis=0)
    return centred / np.sqrt(np.mean(centred**2, axis=0))
