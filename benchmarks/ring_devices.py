"""The mesh ring kernels with ranks on n devices against ranks vmapped on one device.

For n = 2, 4, 8 ranks (each where at least n devices exist), at the authors'
K/V shard (16 tokens per rank) and at 8x it, it times the tiled execution of
``mesh_ring_attention`` (prefill) and ``mesh_ring_attention_decode``:

* **vmapped**: ranks are a named ``vmap`` axis of one jit-compiled function on
  the first device;
* **devices**: one rank per device through ``shard_map``, ring steps as
  collective permutes;

and prints the median wall time of each (compiled, inputs already on the
device, outputs and flags synchronised) and their ratio, measured side by side
in one run.  On a CPU it runs on fake host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set here before JAX
starts) — which shows the placement works, not how fast GPUs are.

Usage: ``python benchmarks/ring_devices.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

if "jax" not in sys.modules and "--xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax
import numpy as np

from tileproof.catalog.mesh_ring_attention import S_KV, make_mesh_ring_attention
from tileproof.verify.numeric import executor
from tileproof.verify.numeric._inputs import draw_inputs


def _median_s(fn, inputs, repeat: int) -> float:
    jax.block_until_ready(fn(inputs))  # compile and warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(inputs))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    devs = jax.devices()
    print(f"{len(devs)} {devs[0].platform} device(s): {devs[0].device_kind}")
    print(
        f"{'kernel':28s} {'S_kv':>5s} {'n':>2s} {'vmapped ms':>11s} {'devices ms':>11s} "
        f"{'ratio':>6s}  flags"
    )
    for s_q, label in ((16, "mesh_ring_attention"), (1, "mesh_ring_attention_decode")):
        for s_kv in (S_KV, 8 * S_KV):
            k = make_mesh_ring_attention(placement="pe", s_q=s_q, s_kv=s_kv)
            for n in (2, 4, 8):
                if n > len(devs):
                    print(f"{label:28s} {s_kv:5d} {n:2d}  not run: {len(devs)} device(s)")
                    continue
                env = {"n": n}
                host = draw_inputs(k, env, np.random.default_rng(0), 0)
                one = {name: jax.device_put(x, devs[0]) for name, x in host.items()}
                t_v = _median_s(executor(k, env), one, args.repeat)
                fn_d = executor(k, env, devices=devs)
                t_d = _median_s(fn_d, host, args.repeat)
                _, flags = fn_d(host)
                ok = "none" if flags.ok else f"{len(flags.findings())} finding(s)"
                print(
                    f"{label:28s} {s_kv:5d} {n:2d} {t_v * 1e3:11.3f} {t_d * 1e3:11.3f} "
                    f"{t_d / t_v:6.2f}  {ok}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
