r"""Scale-out: JAX data parallelism with ``jax.sharding`` and PyTorch ``DistributedDataParallel``.

Both run in fresh subprocesses (``docs/scaling-out.md`` has the recipes):

* JAX, 4 simulated host devices (``--xla_force_host_platform_device_count=4``): a batch of
  per-datapoint mixtures whose parameters are sharded along the batch axis keeps that
  sharding through ``sample`` and through the gradients of a loss of the samples, and the
  values equal those of the unsharded computation (1e-12, float64).
* PyTorch, 2 processes with the ``gloo`` backend on this machine's loopback: a module that
  holds mixture parameters, wrapped in ``DistributedDataParallel``, trains on each rank's
  own samples; after ``backward`` every rank holds the mean of the ranks' gradients, which
  is checked against each rank's gradient computed without DDP from the same draws (1e-12).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

JAX_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import numpyro_gmm

    assert len(jax.devices()) == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = NamedSharding(mesh, P("data"))
    rng = np.random.default_rng(0)
    locs = jnp.asarray(rng.standard_normal((8, 3, 2)))
    scales = jnp.asarray(np.exp(0.3 * rng.standard_normal((8, 3, 2))))
    logits = jnp.asarray(rng.standard_normal((8, 3)))
    sharded = [jax.device_put(a, batch) for a in (locs, scales, logits)]

    def loss(locs, scales, logits, key):
        x = numpyro_gmm.DiagNormalMixture(locs, scales, logits).sample(key, ())  # (8, 2): one draw per datapoint
        return jnp.sum(jnp.cos(x)), x

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))
    key = jax.random.PRNGKey(1)
    (value, x), grads = step(*sharded, key)
    (value_ref, x_ref), grads_ref = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
        locs, scales, logits, key
    )
    spec = lambda a: a.sharding.spec if isinstance(a.sharding, NamedSharding) else None
    assert x.sharding.is_equivalent_to(batch, x.ndim), ("sample", x.sharding)
    for name, g, p in zip(("locs", "scales", "logits"), grads, sharded):
        assert g.sharding.is_equivalent_to(p.sharding, g.ndim), (name, g.sharding, p.sharding)
        assert len(g.addressable_shards) == 4 and g.addressable_shards[0].data.shape[0] == 2, name
    np.testing.assert_allclose(x, x_ref, rtol=1e-12)
    np.testing.assert_allclose(value, value_ref, rtol=1e-12)
    for g, r in zip(grads, grads_ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)
    print("ok", x.sharding)
    """
)


def test_jax_sharding_is_kept_through_sampling_and_gradients():
    environment = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True, env=environment, cwd=ROOT, timeout=600
    )
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stdout + result.stderr


DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch, torch.distributed as dist
    import torch.multiprocessing as mp
    from torch.nn.parallel import DistributedDataParallel
    import pyro_gmm

    WORLD = 2

    class Guide(torch.nn.Module):
        def __init__(self):
            super().__init__()
            generator = torch.Generator().manual_seed(0)
            self.locs = torch.nn.Parameter(torch.randn(3, 4, dtype=torch.float64, generator=generator))
            self.log_scales = torch.nn.Parameter(0.1 * torch.randn(3, 4, dtype=torch.float64, generator=generator))
            self.logits = torch.nn.Parameter(torch.randn(3, dtype=torch.float64, generator=generator))

        def forward(self, targets):
            mixture = pyro_gmm.DiagNormalMixture(self.locs, self.log_scales.exp(), self.logits)
            x = mixture.rsample(targets.shape[:1])
            return ((x - targets) ** 2).sum(-1).mean()

    def per_rank_gradients(rank):
        guide = Guide()
        torch.manual_seed(100 + rank)
        targets = torch.randn(64, 4, dtype=torch.float64)
        guide(targets).backward()
        return [p.grad.clone() for p in guide.parameters()]

    def worker(rank, port, results):
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
        dist.init_process_group("gloo", rank=rank, world_size=WORLD)
        model = DistributedDataParallel(Guide())
        torch.manual_seed(100 + rank)
        targets = torch.randn(64, 4, dtype=torch.float64)
        model(targets).backward()
        expected = [sum(g) / WORLD for g in zip(*(per_rank_gradients(r) for r in range(WORLD)))]
        for got, want in zip((p.grad for p in model.module.parameters()), expected):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        own = per_rank_gradients(rank)
        assert any((a - b).abs().max() > 1e-6 for a, b in zip(own, expected)), "ranks saw the same data"
        results.put(rank)
        dist.destroy_process_group()

    if __name__ == "__main__":
        import socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        context = mp.get_context("spawn")
        results = context.Queue()
        processes = [context.Process(target=worker, args=(rank, port, results)) for rank in range(WORLD)]
        for p in processes:
            p.start()
        for p in processes:
            p.join(300)
        codes = [p.exitcode for p in processes]
        done = sorted(results.get(timeout=5) for _ in range(WORLD)) if all(c == 0 for c in codes) else []
        assert codes == [0, 0] and done == [0, 1], (codes, done)
        print("ok")
    """
)


def test_torch_distributed_data_parallel_averages_the_ranks_gradients(tmp_path):
    script = tmp_path / "ddp_check.py"
    script.write_text(DDP_SCRIPT)
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=600
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr
