r"""Eager backends compute the sweep terms (and ``"rao_blackwell"``'s parameter sums) in blocks
of the event axis (``shared_math._sweeps.event_blocks``); the results must not depend on
the block size.

Test shapes are small, so by default everything is one block.  Here the block size is
forced down to one dimension per block (and to three), and every estimator's vjp and jvp
must equal the one-block result to 1e-12 (float64), for batch, sample and broadcast
dimensions, scales shared across components, and scales shared across dimensions
(``(K, 1)``, whose gradient is summed over the blocks instead of concatenated).
"""

from __future__ import annotations

import _reference as ref
import numpy as np
import pytest

import shared_math
import shared_math._backend
from shared_math import _sweeps as gradients

EVENT_SIZE = 7
NUM_COMPONENTS = 3


def _case(name):
    if name == "scales_per_component":  # scales (K, 1): one scale per component for every d
        data = ref.mixture_case("unbatched", NUM_COMPONENTS, EVENT_SIZE, seed=5)
        rng = np.random.default_rng(6)
        data["scales"] = rng.uniform(0.5, 1.5, (NUM_COMPONENTS, 1))
        x, component, noise = ref.sample_mixture(rng, data["locs"], data["scales"], data["logits"], (5,))
        data.update(x=x, component=component, noise=noise, cotangent=rng.standard_normal(x.shape))
    else:
        data = ref.mixture_case(name, NUM_COMPONENTS, EVENT_SIZE, seed=3)
    rng = np.random.default_rng(4)
    for key in ("locs", "scales", "logits"):
        data[key + "_dot"] = rng.standard_normal(data[key].shape)
    return data


def _all_gradients(xp, data):
    a = {key: xp.asarray(value) for key, value in data.items() if key != "component"}
    point = (a["x"], a["locs"], a["scales"], a["logits"])
    chosen = xp.asarray(ref.one_hot(data["component"], NUM_COMPONENTS))
    dots = (a["locs_dot"], a["scales_dot"], a["logits_dot"])
    results = {
        "implicit_vjp": shared_math.implicit_vjp(*point, a["cotangent"]),
        "hybrid_vjp": shared_math.hybrid_vjp(*point, chosen, a["noise"], a["cotangent"]),
        "rao_blackwell_vjp": shared_math.rao_blackwell_vjp(*point, a["cotangent"]),
        "implicit_jvp": (shared_math.implicit_jvp(*point, *dots),),
        "rao_blackwell_jvp": (shared_math.rao_blackwell_jvp(*point, *dots),),
    }
    return {name: [xp.to_numpy(v) for v in values] for name, values in results.items()}


@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
@pytest.mark.parametrize("case", ["unbatched", "broadcast", "shared_scales", "scales_per_component"])
@pytest.mark.parametrize("dimensions_per_block", [1, 3])
def test_results_do_not_depend_on_the_block_size(xp, case, dimensions_per_block, monkeypatch):
    data = _case(case)
    one_block = _all_gradients(xp, data)
    x_shape = data["x"].shape
    slice_size = NUM_COMPONENTS * int(np.prod(x_shape[:-1]))
    monkeypatch.setattr(gradients, "BLOCK_ELEMENTS", dimensions_per_block * slice_size)
    z_shape = (EVENT_SIZE, NUM_COMPONENTS) + tuple(x_shape[:-1])
    blocks = gradients.event_blocks(z_shape, xp.xp)
    assert len(blocks) == -(-EVENT_SIZE // dimensions_per_block) and blocks[-1][1] == EVENT_SIZE
    blocked = _all_gradients(xp, data)
    for name, values in one_block.items():
        for index, (want, got) in enumerate(zip(values, blocked[name])):
            assert got.shape == want.shape, f"{name}[{index}]: shape {got.shape} != {want.shape}"
            ref.assert_close(got, want, 1e-12, what=f"{name}[{index}] in blocks of {dimensions_per_block}")


@pytest.mark.parametrize("xp", ["numpy", "torch", "strict"], indirect=True)
@pytest.mark.parametrize("case", ["unbatched", "broadcast", "shared_scales", "scales_per_component"])
@pytest.mark.parametrize("sweep_block", [2, 3])
def test_blocked_sweeps_equal_the_sequential_sweeps(xp, case, sweep_block, monkeypatch):
    """The blocked reverse and forward sweeps (``_sweeps.sweep_block_size`` > 1: triangular
    solves over blocks of dimensions, used for few samples) give every estimator's vjp and
    jvp of the sequential sweeps to 1e-12, including a last block shorter than the others,
    and so does the cumulative sum taken whole for small slices."""
    data = _case(case)
    monkeypatch.setattr(gradients, "SWEEP_BLOCKED_MAX_SLICE", 0)
    monkeypatch.setattr(shared_math._backend, "SMALL_SLICE", 0)
    sequential = _all_gradients(xp, data)
    monkeypatch.setattr(gradients, "SWEEP_BLOCKED_MAX_SLICE", 1 << 30)
    monkeypatch.setattr(gradients, "SWEEP_BLOCK", sweep_block)
    monkeypatch.setattr(gradients, "SWEEP_WIDE_BLOCK", sweep_block)
    monkeypatch.setattr(shared_math._backend, "SMALL_SLICE", 1 << 30)
    z_shape = (EVENT_SIZE, NUM_COMPONENTS) + tuple(data["x"].shape[:-1])
    assert gradients.sweep_block_size(z_shape, xp.xp) == sweep_block
    blocked = _all_gradients(xp, data)
    for name, values in sequential.items():
        for index, (want, got) in enumerate(zip(values, blocked[name])):
            ref.assert_close(got, want, 1e-12, what=f"{name}[{index}] blocked sweep of {sweep_block}")


@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
def test_event_blocks_split_large_arrays_at_least_four_ways(xp):
    """Cache-sized blocks of about ``BLOCK_ELEMENTS`` entries; arrays of more than four
    ``MIN_BLOCK_ELEMENTS`` get at least ``MIN_EVENT_BLOCKS`` blocks (their peak memory is one
    block's temporaries); small arrays stay one block.  The blocks tile the event axis."""
    cases = {
        (1000, 8, 16): 4,  # N = 16, K = 8, D = 1000: 128k entries, one block before
        (16, 8, 4096): 4,  # 4 dimensions of 32k entries per block of 2**17
        (128, 8, 1024): 8,
        (5, 3, 100): 1,
        (16, 8, 256): 1,  # 32k entries: below 4 * 2**15
    }
    assert gradients.MIN_EVENT_BLOCKS == 4
    for shape, count in cases.items():
        blocks = gradients.event_blocks(shape, xp.xp)
        assert len(blocks) == count, (shape, blocks)
        assert blocks[0][0] == 0 and blocks[-1][1] == shape[0]
        assert all(stop == start for (_, stop), (start, _) in zip(blocks, blocks[1:]))


@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
def test_sweep_block_size_by_slice(xp):
    """Sequential sweeps for few dimensions or wide slices; blocks of ``SWEEP_WIDE_BLOCK`` for
    the smallest slices (few samples), ``SWEEP_BLOCK`` otherwise."""
    assert gradients.sweep_block_size((1000, 8, 16), xp.xp) == gradients.SWEEP_WIDE_BLOCK == 64
    assert gradients.sweep_block_size((256, 8, 256), xp.xp) == gradients.SWEEP_BLOCK == 32
    assert gradients.sweep_block_size((16, 8, 16), xp.xp) == 1
    assert gradients.sweep_block_size((128, 8, 1024), xp.xp) == 1


@pytest.mark.parametrize("slice_shape", [(3, 2), (8, 1024)], ids=["small-slice", "loop"])
@pytest.mark.parametrize("keep_initial", [False, True])
def test_leading_cumsum_matches_numpy(xp, slice_shape, keep_initial):
    """``leading_cumsum`` on every backend and both eager paths (``cumulative_sum`` for slices
    of at most ``SMALL_SLICE`` entries, the running loop above): ``initial + cumsum`` along
    axis 0, with ``initial`` (broadcast over the slice) as an extra first row when
    ``keep_initial``; to 1e-12 against NumPy."""
    rng = np.random.default_rng(11)
    values = rng.standard_normal((5,) + slice_shape)
    initial = rng.standard_normal((1, slice_shape[0], 1))
    want = initial + np.cumsum(values, axis=0)
    if keep_initial:
        want = np.concatenate([np.broadcast_to(initial, (1,) + slice_shape), want], axis=0)
    got = xp.call(
        lambda v, i: shared_math._backend.leading_cumsum(v, xp.xp, initial=i, keep_initial=keep_initial),
        xp.asarray(values),
        xp.asarray(initial),
    )
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(xp.to_numpy(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, -1.0, -0.5])
def test_multiply_add_matches_numpy(xp, scale):
    """``multiply_add(b, l, r, scale=c)`` is ``b + c l r`` with broadcasting on every backend
    (torch's ``addcmul``, plain arithmetic elsewhere)."""
    rng = np.random.default_rng(12)
    base, left, right = rng.standard_normal((4, 1, 6)), rng.standard_normal((1, 3, 6)), rng.standard_normal((4, 3, 1))
    got = xp.call(
        lambda b, l, r: shared_math._backend.multiply_add(b, l, r, xp.xp, scale=scale),
        *(xp.asarray(a) for a in (base, left, right)),
    )
    np.testing.assert_allclose(xp.to_numpy(got), base + scale * left * right, rtol=1e-14, atol=1e-14)
