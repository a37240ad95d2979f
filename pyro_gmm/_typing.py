"""Type aliases of the public signatures of :mod:`pyro_gmm` (private)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy.typing as npt
import torch

#: A distribution parameter: a tensor, or anything ``torch.as_tensor`` takes (a Python
#: number, a nested sequence of numbers, a NumPy array); converted to one floating dtype.
TensorLike: TypeAlias = torch.Tensor | npt.ArrayLike

#: A ``sample_shape`` or ``batch_shape``: a ``torch.Size`` or any sequence of integers.
SizeLike: TypeAlias = torch.Size | Sequence[int]

__all__ = ["SizeLike", "TensorLike"]
