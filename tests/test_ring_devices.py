"""Ranks as devices (``shard_map``, ``sendrecv`` as a collective) give what ranks vmapped give.

Each test starts one interpreter with 8 host devices
(``--xla_force_host_platform_device_count=8``: the flag must be set before JAX
starts, hence the subprocess) and runs ``compare_placements`` there: the same
run-time findings word for word, the same outputs and the same gradients (up to
float reassociation) for every rank count n = 1..8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tileproof.catalog import mesh_ring_attention

RANKED = [k.name for k in mesh_ring_attention.SPECS]
TOL = 1e-5  # float32 outputs of order 1: only reassociation may differ


def _run_on_devices(body: str) -> list[dict]:
    code = textwrap.dedent("""
        import json, jax
        from tileproof.verify.numeric._devices import compare_placements
        assert len(jax.devices()) == 8, jax.devices()
        def report(p):
            print(json.dumps(dict(name=p.kernel, n=p.sizes.get("n"), same=p.same_flags,
                                  flags=list(p.findings_vmapped), flags_dev=list(p.findings_devices),
                                  out=p.max_out_diff, grad=p.max_grad_diff)), flush=True)
    """) + textwrap.dedent(body)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name", RANKED)
def test_catalog_ring_kernel_on_devices_matches_vmapped_ranks(name):
    rows = _run_on_devices(f"""
        from tileproof.catalog import mesh_ring_attention as m
        k = getattr(m, {name!r})
        for n in range(1, 9):
            report(compare_placements(k, {{"n": n}}, gradients=n in (1, 2, 5, 8)))
    """)
    assert [r["n"] for r in rows] == list(range(1, 9))
    for r in rows:
        assert r["same"] and r["flags"] == [], r  # a correct kernel: no finding in either
        assert r["out"] <= TOL, r
        if r["n"] in (1, 2, 5, 8):
            assert r["grad"] is not None and r["grad"] <= TOL, r


def test_defects_are_flagged_the_same_way_on_devices():
    rows = _run_on_devices("""
        import numpy as np
        import tileproof.spec as tp
        from tileproof.catalog.bugs._mesh_ring_attention import mesh_ring_gated_partner

        @tp.kernel(grid={"one": 1}, ranks=tp.Ranks(size="n", topology="mesh", name="r"),
                   assume=["n <= 8"], tensors=dict(x=tp.Input(("n", 8)), o=tp.Output(("n", 8))))
        def closed_ring_on_open_mesh(x, o):
            r = tp.rank_id()
            got = tp.sendrecv(tp.load(x, (r, slice(None))), to=r + 1, frm=r - 1)  # wraps nowhere
            tp.store(o, (r, slice(None)), got)

        for n in (2, 5, 8):
            report(compare_placements(mesh_ring_gated_partner, {"n": n}, gradients=False))
            report(compare_placements(closed_ring_on_open_mesh, {"n": n}, gradients=False))
    """)
    assert len(rows) == 6
    for r in rows:
        assert r["flags"], r  # each run is flagged ...
        assert r["same"], (r["flags"], r["flags_dev"])  # ... identically on devices
    gated = [r for r in rows if r["name"] == "mesh_ring_gated_partner"]
    assert all("does not receive from it" in " ".join(r["flags"]) for r in gated)
    edge = [r for r in rows if r["name"] == "closed_ring_on_open_mesh"]
    for r in edge:
        assert any(f"to rank {r['n']}" in f for f in r["flags"]), r["flags"]  # off the open edge
