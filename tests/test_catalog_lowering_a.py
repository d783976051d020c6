"""The `fused_decode` and `mesh_ring_attention` catalog specs lower completely, to the model
docs/catalog.md §1-2 describe, and each defect variant differs from its correct spec only at
the defect (compared on the listing, which is what the verifier reads)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import line_of
from specs.listings import changed, listing

from tileproof.catalog import fused_decode as FD
from tileproof.catalog import mesh_ring_attention as MR
from tileproof.catalog.bugs import _fused_decode as FDB
from tileproof.catalog.bugs import _mesh_ring_attention as MRB
from tileproof.lowering import lower
from tileproof.model import Fold

ALL = [*FD.SPECS, *MR.SPECS, *FDB.VARIANTS, *MRB.VARIANTS]


@pytest.mark.parametrize("kernel", ALL, ids=lambda k: k.name)
def test_lowers_completely(kernel):
    assert lower(kernel).unsupported == []


def test_variant_names_are_the_catalog_names():
    assert [k.name for k in FDB.VARIANTS] == [
        "fused_decode_odd_split",
        "fused_decode_wave_launch",
        "fused_decode_kv_offset_int32",
        "fused_decode_empty_seq",
    ]
    assert [k.name for k in MRB.VARIANTS] == [
        "mesh_ring_short",
        "mesh_ring_gated_partner",
        "mesh_ring_stale_backward",
    ]
    assert len({k.name for k in ALL}) == len(ALL)


# ------------------------------------------------------------------ fused_decode


def test_fused_decode_phases_and_index_formulas():
    text = listing(FD.fused_decode)
    assert "launch  24 cores, start together; concurrent zero_fill (3 programs, unfenced)" in text
    assert "grid    core < 24" in text
    assert re.search(r"k_cache +input +bfloat16\[1024\*L\*NP, 128\]  index int64", text)
    assert re.search(r"block_table +input +int32\[B, M\]  values 0 <= v and v < NP  distinct", text)
    body = text.split("  body\n", 1)[1]
    # phase 0: 32 of 48 task-parallel lanes, 4 items each: g = 4*(2*core + lane) + it
    assert "lanes lane in [0, 2) task-parallel:" in body
    assert "if 2*core + lane < 32:" in body
    assert re.search(r"if \(8\*core \+ i_\d+ \+ 4\*lane\) % 16 < B:", body)
    # the new token's cache row: layer_base + (page*8 + kvh)*128 + slot
    assert re.search(
        r"store k_cache\[ds\(1024\*block_table_\d+ \+ layer_base_\d+ \+ "
        r"128\*\(\(8\*core \+ i_\d+ \+ 4\*lane\) // 16\) \+ \(seq_lens_\d+ \+ 127\) % 128, 1\)",
        body,
    )
    # phase 1: grid-stride over the work table, 16-row QK, rows halved across 2 lanes
    assert re.search(r"for i_\d+ in \[0, \(num_work_\d+ - core \+ 23\) // 24\):", body)
    assert re.search(r"load  work\[core \+ 24\*i_\d+\]", body)
    assert re.search(r"mask _c0 < min\(128, seq_lens_\d+ - 128\*\(work_\d+ % M\)\)", body)
    assert "halving axis 0:" in body
    assert "lane_part of tile [16, 128] along axis 0 / 2" in body
    assert re.search(
        r"store part_o\[ds\(.*8\*lane_2 \+ 16\*\(work_\d+ % M\), 8\), ds\(0, 128\)\]", body
    )
    # phase 2: task-parallel again, step 48 over 8*B items, [5, 128] and [1, 640] tiles
    assert re.search(r"for i_\d+ in \[0, \(8\*B - 2\*core - lane_3 \+ 47\) // 48\):", body)
    assert re.search(
        r"load  part_o\[ds\([^\]]*, 5\), ds\(0, 128\)\]  mask \(seq_lens_\d+ \+ 127\) "
        r"// 128 > 0",
        body,
    )
    assert re.search(r"for i_\d+ in \[1, \(seq_lens_\d+ \+ 127\) // 128\):", body)
    assert re.search(
        r"store out\[ds\([^\]]*, 1\), ds\(640\*\(\(2\*core \+ lane_3\) % 8\), 640\)\]", body
    )
    assert body.count("barrier(grid)") == 2
    assert body.index("store k_cache") < body.index("barrier(grid)")


def test_fused_decode_odd_split_differs_only_by_the_split():
    """Only phase 2 changes: its lanes halve rows, so they share each work item (core, not
    2*core + lane) and each stores its 5 // 2 = 2-row half of the [5, 128] result."""
    gone, new = changed(FD.fused_decode, FDB.fused_decode_odd_split)
    gone_text, new_text = "\n".join(gone), "\n".join(new)
    assert "lanes lane_3 in [0, 2) task-parallel:" in gone_text
    assert "lanes lane_3 in [0, 2) halving axis 0:" in new_text
    assert "lane_part of tile [5, 128] along axis 0 / 2" in new_text
    i = f"i_{line_of(FD, 'lax.fori_loop(0, (B * HKV - idx + step - 1) // step, reduce, 0)')}"
    assert f"store out[ds(3*{i} + core // 8, 1), ds(256*lane_3 + 640*(core % 8), 256)]" in new_text
    lines = FD.fused_decode.location.line, FDB.fused_decode_odd_split.location.line
    assert lines[0] == lines[1]
    phase2 = int(gone[0].split()[0][1:])  # nothing before phase 2's lanes region changed
    assert all(int(x.split()[0][1:]) >= phase2 for x in gone + new if x.split()[0][1:].isdigit())


def test_fused_decode_wave_launch_differs_only_by_the_launch():
    gone, new = changed(FD.fused_decode, FDB.fused_decode_wave_launch)
    assert gone == ["launch  24 cores, start together; concurrent zero_fill (3 programs, unfenced)"]
    assert new == ["launch  24 cores, start waves; concurrent zero_fill (3 programs, unfenced)"]


def test_fused_decode_kv_offset_int32_differs_only_by_the_cache_index_width():
    gone, new = changed(FD.fused_decode, FDB.fused_decode_kv_offset_int32)
    assert len(gone) == len(new) == 2
    for a, b in zip(gone, new):
        assert a.split()[0] in ("k_cache", "v_cache")
        assert a.endswith("index int64") and b == a.replace("index int64", "index int32")


def test_fused_decode_empty_seq_differs_only_by_the_unguarded_seed():
    gone, new = changed(FD.fused_decode, FDB.fused_decode_empty_seq)
    assert len(gone) == len(new) == 3
    for a, b in zip(gone, new):
        assert re.search(
            r"load  part_[oml]\[ds\([^\]]*, 5\).*  mask \(seq_lens_\d+ \+ 127\) // 128 > 0$", a
        )
        assert b == a.split("  mask ")[0]


def test_build_work_table_lists_every_page_once():
    seq = np.array([0, 1, 128, 129, 300])
    work, num = FD.build_work_table(seq, max_pages=3)
    assert sorted(work.tolist()) == list(range(15))  # a permutation: distinct, in range
    live = [(int(k) // 3, int(k) % 3) for k in work[: num[0]]]
    assert live == [(1, 0), (2, 0), (3, 0), (3, 1), (4, 0), (4, 1), (4, 2)]


def test_fused_decode_reference_adapter_reads_the_kernels_cache_rows():
    """With q = 0 attention is a plain mean of V over the sequence: rows at the kernel's
    `layer_base + (page*8 + kvh)*128 + slot`, the new token's from v_new."""
    b, m, npages, layers = 2, 2, 4, 2
    rng = np.random.default_rng(0)
    rows = layers * npages * 1024
    seq = np.array([0, 200])
    table = np.array([[0, 1], [3, 2]])
    base = npages * 1024 - 512  # any base in range works: the adapter needs no whole layers
    v_cache = rng.standard_normal((rows, 128)).astype(np.float32)
    v_new = rng.standard_normal((b * 8, 128)).astype(np.float32)
    work, num = FD.build_work_table(seq, m)
    args = dict(
        q=jnp.zeros((b * 40, 128), jnp.bfloat16),
        k_new=jnp.asarray(rng.standard_normal((b * 8, 128)), jnp.bfloat16),
        v_new=jnp.asarray(v_new, jnp.bfloat16),
        q_norm_w=jnp.ones(128),
        k_norm_w=jnp.ones(128),
        cos=jnp.ones((b, 64)),
        sin=jnp.zeros((b, 64)),
        k_cache=jnp.zeros((rows, 128), jnp.bfloat16),
        v_cache=jnp.asarray(v_cache, jnp.bfloat16),
        block_table=jnp.asarray(table, jnp.int32),
        seq_lens=jnp.asarray(seq, jnp.int32),
        layer_base=jnp.array([base], jnp.int32),
        work=jnp.asarray(work),
        num_work=jnp.asarray(num),
    )
    assert list(args) == FD.fused_decode.inputs
    out = np.asarray(jax.jit(FD.fused_decode.reference)(**args)["out"], np.float32)
    assert out.shape == (b, 5120)
    assert np.all(out[0] == 0)  # an empty sequence attends to nothing
    vc = np.asarray(args["v_cache"], np.float32)
    for kvh in range(8):
        t = np.arange(seq[1] - 1)
        hist = vc[base + (table[1, t // 128] * 8 + kvh) * 128 + t % 128]
        vn = np.asarray(args["v_new"], np.float32)[8 + kvh]
        want = (hist.sum(0) + vn) / seq[1]
        got = out[1].reshape(40, 128)[kvh * 5 : kvh * 5 + 5]
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=2e-2, atol=2e-2)


# ------------------------------------------------------------- mesh_ring_attention


@pytest.mark.parametrize("kernel", MR.SPECS, ids=lambda k: k.name)
def test_mesh_ring_folds_every_chunk_with_ring_provenance(kernel):
    model = lower(kernel)
    text = listing(kernel)
    assert "ranks   r < n (mesh)" in text
    folds = [str(n.prov) for n in model.walk() if isinstance(n, Fold)]
    assert folds[0] == "r"  # step 0: its own chunk
    assert re.fullmatch(r"r - i_\d+", folds[1]) and re.fullmatch(r"i_\d+ \+ r", folds[2])
    assert re.search(r"for i_\d+ in \[1, n\):", text)
    assert re.search(
        r"sendrecv to r \+ 1 if r \+ 1 < n and r - i_\d+ \+ 1 >= 0; "
        r"from r - 1 if r - 1 >= 0 and r - i_\d+ >= 0  \(chunk of rank r - i_\d+ \+ 1\)",
        text,
    )
    assert re.search(
        r"sendrecv to r - 1 if r - 1 >= 0 and i_\d+ \+ r - 1 < n; "
        r"from r \+ 1 if r \+ 1 < n and i_\d+ \+ r < n  \(chunk of rank i_\d+ \+ r - 1\)",
        text,
    )
    assert re.search(r"fold chunk of rank r - i_\d+ if r - 1 >= 0 and r - i_\d+ >= 0", text)
    assert re.search(r"fold chunk of rank i_\d+ \+ r if r \+ 1 < n and i_\d+ \+ r < n", text)
    sq = 1 if kernel.name.endswith("_decode") else 16
    assert f"store out[r, ds(0, {sq}), ds(0, 8), ds(0, 128)]" in text
    cube = "_cube" in kernel.name
    assert ("grid    pe < 8" if cube else "grid    prog < 1") in text
    assert ("unless-exited pe == 0:" in text) == cube


def test_mesh_ring_short_differs_only_by_the_step_count():
    gone, new = changed(MR.mesh_ring_attention, MRB.mesh_ring_short)
    assert len(gone) == len(new) == 1
    assert re.fullmatch(r"L\d+ +for (i_\d+) in \[1, n\):", gone[0])
    assert new[0] == gone[0].replace("[1, n)", "[1, n - 1)")


def test_mesh_ring_gated_partner_differs_only_by_the_gate():
    gone, new = changed(MR.mesh_ring_attention_cube, MRB.mesh_ring_gated_partner)
    assert [g.split(None, 1)[1] for g in gone][:1] == ["unless-exited pe == 0:"]
    assert [n.split(None, 1)[1] for n in new][:1] == ["unless-exited r == 0:"]
    # a received chunk arrives only where its sender passed the gate too: the folds' arrival
    # conditions gain the gate at the sender (rank r - 1 eastbound, r + 1 westbound)
    assert len(gone) == len(new) == 3
    for g, n, sender in zip(gone[1:], new[1:], ("r - 1 == 0", "r + 1 == 0")):
        assert g.split(" if ")[0] == n.split(" if ")[0] and sender in n and sender not in g


def test_mesh_ring_stale_backward_has_the_forward_schedule():
    # the defect lives in the custom_vjp's backward: the schedule model is the correct one's
    assert changed(MR.mesh_ring_attention, MRB.mesh_ring_stale_backward) == ([], [])


def _ring_by_hand(q, k, v, partial):
    """The spec's per-rank math in the ring's step order, ranks unrolled (no executor)."""
    n = q.shape[0]
    outs = []
    for r in range(n):
        own = jnp.stack([k[r], v[r]])
        acc = partial(q[r], own, own)
        for i in range(1, n):
            for c in (r - i, r + i):
                got = 0 <= c < n
                chunk = jnp.stack([k[c], v[c]]) if got else jnp.zeros_like(own)
                acc = MR._merge(acc, partial(q[r], chunk, own), jnp.asarray(got))
        _, l, o = acc
        outs.append(jnp.transpose(o / l[..., None], (1, 0, 2)))
    return jnp.stack(outs)


def test_mesh_ring_fold_math_and_the_stale_backward():
    """Small heads: the fold math is shape-generic (its scale is 1/sqrt(D), as the reference's)."""
    rng = np.random.default_rng(1)
    n, sq, s, h, d = 2, 2, 4, 2, 16  # n = 2: one step, one chunk each way
    q, k, v = (jnp.asarray(rng.standard_normal((n, t, h, d)), jnp.float32) for t in (sq, s, s))
    g = jnp.asarray(rng.standard_normal((n, sq, h, d)), jnp.float32)
    ref = MR.mesh_ring_attention.reference

    @jax.jit
    def run(q, k, v, g):
        res = []
        for f in (
            lambda *a: ref(*a)["out"],
            lambda *a: _ring_by_hand(*a, MR._partial_attention(False)),
            lambda *a: _ring_by_hand(*a, MR._partial_attention(True)),
        ):
            out, vjp = jax.vjp(f, q, k, v)
            res.append((out, vjp(g)))
        return res

    (want_out, want), (out, right), (stale_out, stale) = run(q, k, v, g)
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stale_out, want_out, rtol=1e-5, atol=1e-5)  # forward unchanged
    for a, b in zip(want, right):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    assert max(float(jnp.max(jnp.abs(a - c))) for a, c in zip(want, stale)) > 0.1
