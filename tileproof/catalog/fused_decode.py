"""Spec of `fused_decode`: Qwen3-14B decode attention in one launch (docs/catalog.md §1).

From pypto-lib PR #656 (``fa_fused`` in ``models/qwen3/14b/decode_layer.py``): RoPE +
QK-norm, paged attention and the cross-page online softmax of one decode step fused
into a single launch of 24 programs (one per cube core, 2 vector lanes each), with two
in-kernel grid barriers (``pl.system.syncall``) in place of three dispatches:

- phase 0, task-parallel lanes (``split_aiv`` NONE): lane ``2*core + lane``, the first
  32 of 48 work, 4 (kv-head, batch) items each (``g = lane*4 + it``, ``kvh = g // 16``,
  ``b = g % 16``): RMS QK-norm then RoPE of the 5 query heads (padded to a 16-row tile)
  and of the new key, and the write of the new K/V at the paged cache row
  ``layer_base + (page*8 + kvh)*128 + slot``;
- grid barrier 1;
- phase 1: grid-stride over a host-built work table of (batch, page) entries
  (``ceil(seq_len/128)`` per sequence, capacity ``B*M``); per entry and kv head, QK on
  the full 16-row tile masked to ``valid = min(128, seq_len - page*128)`` columns, then
  the softmax and PV split over the 2 lanes by halving rows (``split_aiv`` UP_DOWN),
  each lane storing its partial (m, l, o) at ``base + page*16 + lane*8``;
- grid barrier 2;
- phase 2, task-parallel lanes again (``idx = 2*core + lane``, grid-stride step 48 over
  the ``B*8`` (batch, kv-head) items): starting from page 0's partials, fold pages
  1..n-1 with the online softmax; its tiles are [5, 128] and [1, 640], which cannot be
  halved, hence no row split here.

Modelling choices, and why:

- Sizes the kernel is generic in are symbols with the authors' maxima in the domain:
  batch ``B <= 16`` (phase 0's fixed ``b = g % 16`` map covers 16 rows; rows ``b >= B``
  are skipped), block-table width ``M <= 32`` pages (4096 tokens), pool pages per layer
  ``NP <= 512``, layers ``L <= 40``.  Head counts (8 KV heads, 5 query heads each), head
  dim 128, page 128 and the 24-core machine are the kernel's constants.  Small sizes
  (one layer, a few pages, batch 1) are admissible for numeric runs on CPU.
- ``layer_base`` is a runtime scalar (the first cache row of the layer), declared in
  range; the K/V caches stack all layers, so an element offset reaches
  ``40*512*8*128*128 = 2.68e9``: the caches are addressed with 64-bit offsets
  (``index_bits=64``); ``fused_decode_kv_offset_int32`` is the 32-bit version.
- The caches are read (phase 1) and written in place (phase 0): they are inputs that
  the kernel also stores to; the checked output is the attention result.
- A work entry is one int32 key ``b*M + page`` (so its range pins both ``b < B`` and
  ``page < M``); ``num_work`` entries are live.  The table and the block table are
  ``distinct`` (no entry listed twice, no physical page shared by two sequences: the
  phase-0 cache writes and phase-1 partial writes of different programs then never
  collide).  Which entries exist is the host's invariant, and a value range cannot
  say it: that phase 2 reads only partials some entry wrote holds *because* the live
  entries are exactly the pages of every sequence.  So the table is declared as what
  it enumerates (``enumerates=``): entries ``[0, num_work[0])`` are exactly the keys
  ``v`` with ``v % M < cdiv(seq_lens[v // M], 128)``, each once.  The static verifier
  then finds, for a partial row phase 2 reads, its key ``b*M + j`` and "the entry that
  holds it", hence the phase-1 program and iteration that wrote it; a sequence of
  length 0 has no page-0 entry, which is how ``fused_decode_empty_seq`` is caught.
  The host's builder is :func:`build_work_table` (the same table as
  :func:`tileproof.spec.build_enumeration` builds from the declaration); numeric runs
  rebuild the table from the drawn ``seq_lens`` through ``numeric={"derive": ...}``.
- Activations, weights and RoPE tables are bf16 as in the model (math in float32);
  q is rounded to bf16 between phases (``q_pad``), as the kernel does.
- Sequences of length 0 are admissible (the reference gives zeros for them): phase 0
  then writes no cache row, and phase 2 reads page 0's partials only under the mask
  ``n > 0``.  Without that mask phase 2 reads partials no entry wrote
  (``fused_decode_empty_seq``).
- The launch is cooperative (``start="together"``): all 24 programs are resident before
  any runs, so the zero-fill tasks that the surrounding graph may run next to the
  kernel without a dependency edge cannot starve the barriers.  Starting in waves is
  ``fused_decode_wave_launch``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import lax

import tileproof.spec as tp

from .references import fused_decode as _fused_decode

__all__ = ["SPECS", "build_work_table", "fused_decode", "make_fused_decode"]

HKV = 8  # KV heads
GROUP = 5  # query heads per KV head
HQ = HKV * GROUP  # 40 query heads
QROWS = 16  # query rows per (b, kvh) tile: 5 heads padded to 16
D = 128  # head dim
PAGE = 128  # KV block rows
CORES = 24  # programs (cube cores), each with 2 vector lanes
P0_LANES = 32  # phase-0 lanes that work (of 48)
P0_ITEMS = 4  # (kv-head, batch) items per phase-0 lane
P0_BATCH = 16  # phase 0's batch modulus (the kernel's batch)
P2_STEP = 2 * CORES  # phase-2 grid-stride step: 48 lanes
EPS = 1e-6
SCALE = 1.0 / math.sqrt(D)
_NEG = -1e30  # finite -inf: exp(_NEG - m) is 0, no inf - inf
_F32 = jnp.float32
_HI = lax.Precision.HIGHEST
_ALL = slice(None)


def _rms_norm(x, w):
    return x * lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def _rope(x, cos, sin):
    """Rotate-half RoPE: dimension i pairs with i + D/2; cos/sin are [D/2]."""
    x1, x2 = x[:, : D // 2], x[:, D // 2 :]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _merge(acc, new):
    """Online-softmax merge of two (m, l, o) partials over the same rows."""
    m, l, o = acc
    m2, l2, o2 = new
    mc = jnp.maximum(m, m2)
    a, b = jnp.exp(m - mc), jnp.exp(m2 - mc)
    return mc, l * a + l2 * b, o * a[:, None] + o2 * b[:, None]


def build_work_table(seq_lens, max_pages: int):
    """The host's phase-1 work table: ``(work [B*M] int32, num_work [1] int32)``.

    Live entries first, in (batch, page) order: key ``b*M + page`` for every
    ``page < ceil(seq_lens[b] / 128)``; the dead tail holds the remaining keys, so the
    whole table is a permutation of ``[0, B*M)`` (distinct, in range).
    """
    seq_lens = np.asarray(seq_lens)
    keys = np.arange(seq_lens.shape[0] * max_pages)
    live = keys % max_pages < -(-seq_lens[keys // max_pages] // PAGE)
    order = np.argsort(~live, kind="stable")
    return keys[order].astype(np.int32), np.array([live.sum()], np.int32)


def _derive_work_table(inputs, sizes):
    """Numeric runs: the work table the host builds from the drawn ``seq_lens``."""
    work, num_work = build_work_table(inputs["seq_lens"], sizes["M"])
    return {"work": work, "num_work": num_work}


def _reference(
    q,
    k_new,
    v_new,
    q_norm_w,
    k_norm_w,
    cos,
    sin,
    k_cache,
    v_cache,
    block_table,
    seq_lens,
    layer_base,
    work,
    num_work,
):
    """The catalog reference on the kernel's flat layouts.

    The stacked cache seen from row ``layer_base`` is a pool of pages of 8 heads x 128
    slots; the reference wants ``[pages, slot, head, D]``.  The work table is schedule.
    """
    b = seq_lens.shape[0]

    def pool(cache):
        cache = jnp.roll(cache, -layer_base[0], axis=0)
        return cache.reshape(-1, HKV, PAGE, D).transpose(0, 2, 1, 3)

    out, _, _ = _fused_decode(
        q.reshape(b, HQ, D),
        k_new.reshape(b, HKV, D),
        v_new.reshape(b, HKV, D),
        q_norm_w,
        k_norm_w,
        cos,
        sin,
        pool(k_cache),
        pool(v_cache),
        block_table,
        seq_lens,
        scale=SCALE,
        eps=EPS,
    )
    return {"out": out.reshape(b, HQ * D)}


def make_fused_decode(
    *,
    odd_split: bool = False,
    wave_launch: bool = False,
    kv_offset_int32: bool = False,
    empty_seq: bool = False,
    name: str | None = None,
) -> tp.Kernel:
    """The spec, or it with one of the docs/catalog.md §1 defects.

    - ``odd_split``: phase 2 runs under the row-halving split of phase 1: the two lanes
      share each work item and keep half of its [5, 128] result each, so a row is lost
      (``fused_decode_odd_split`` -> ``split``; numerically, unwritten output rows).
    - ``wave_launch``: programs may start in waves while the unfenced zero-fill tasks
      hold cores, so 24 barrier participants need not be co-resident
      (``fused_decode_wave_launch`` -> ``barrier``).
    - ``kv_offset_int32``: cache offsets in 32 bits (``fused_decode_kv_offset_int32``
      -> ``overflow``).
    - ``empty_seq``: phase 2 seeds from page 0's partials without checking that the
      sequence has a page (``fused_decode_empty_seq`` -> ``coverage``).
    """
    cache_bits = 32 if kv_offset_int32 else 64

    @tp.kernel(
        name=name or "fused_decode",
        grid={"core": CORES},
        assume=["B <= 16", "M <= 32", "NP <= 512", "L <= 40", "B*M <= NP"],
        defaults=dict(B=16, M=32, NP=512, L=40),
        launch=tp.Launch(
            cores=CORES,
            start="waves" if wave_launch else "together",
            # down_seed / gate_seed / up_seed: zero-fills with no dependency edge on the kernel
            concurrent=(tp.Task("zero_fill", programs=3, fenced=False),),
        ),
        tensors=dict(
            q=tp.Input(("B*40", D), "bfloat16"),
            k_new=tp.Input(("B*8", D), "bfloat16"),
            v_new=tp.Input(("B*8", D), "bfloat16"),
            q_norm_w=tp.Input((D,), "bfloat16"),
            k_norm_w=tp.Input((D,), "bfloat16"),
            cos=tp.Input(("B", D // 2), "bfloat16"),
            sin=tp.Input(("B", D // 2), "bfloat16"),
            k_cache=tp.Input(("L*NP*1024", D), "bfloat16", index_bits=cache_bits),
            v_cache=tp.Input(("L*NP*1024", D), "bfloat16", index_bits=cache_bits),
            block_table=tp.Input(("B", "M"), "int32", values="0 <= v < NP", distinct=True),
            seq_lens=tp.Input(("B",), "int32", values="0 <= v <= 128*M"),
            layer_base=tp.Input((1,), "int32", values="0 <= v <= (L - 1)*NP*1024"),
            work=tp.Input(
                ("B*M",),
                "int32",
                values="0 <= v < B*M",
                distinct=True,
                # entries [0, num_work[0]) are the keys b*M + page of every page of every sequence
                enumerates=f"v % M < cdiv(seq, {PAGE})",
                reads={"seq": ("seq_lens", "v // M"), "n": ("num_work", 0)},
                count="n",
            ),
            num_work=tp.Input((1,), "int32", values="0 <= v <= B*M"),
            q_pad=tp.Scratch(("B*128", D), "bfloat16"),  # [B, 8 kv heads, 16 rows]
            part_o=tp.Scratch(("B*M*128", D)),  # [B, 8, M pages, 16 rows]
            part_m=tp.Scratch(("B*M*128",)),
            part_l=tp.Scratch(("B*M*128",)),
            out=tp.Output(("B", HQ * D), "bfloat16"),
        ),
        reference=_reference,
        numeric={"derive": _derive_work_table},
    )
    def fused_decode(
        q,
        k_new,
        v_new,
        q_norm_w,
        k_norm_w,
        cos,
        sin,
        k_cache,
        v_cache,
        block_table,
        seq_lens,
        layer_base,
        work,
        num_work,
        q_pad,
        part_o,
        part_m,
        part_l,
        out,
    ):
        """RoPE + QK-norm + cache write | barrier | paged QK/softmax/PV | barrier | reduction."""
        core = tp.program_id(0)
        B, M = tp.size("B"), tp.size("M")
        lbase = tp.load(layer_base, (0,))

        def cache_row(page, kvh):  # first cache row of (page, kv head) in this layer
            return lbase + (page * HKV + kvh) * PAGE

        def partial_rows(b, kvh, page):  # first partial row of (b, kv head, page)
            return (b * HKV + kvh) * M * QROWS + page * QROWS

        # ---- phase 0: RoPE + QK-norm, new K/V into the cache (task-parallel lanes)
        with tp.lanes(2) as lane:
            lid = 2 * core + lane

            @tp.when(lid < P0_LANES)
            def _():
                def item(it, carry):
                    g = lid * P0_ITEMS + it
                    kvh, b = g // P0_BATCH, g % P0_BATCH

                    @tp.when(b < B)
                    def _():
                        cs = tp.load(cos, (b, _ALL)).astype(_F32)
                        sn = tp.load(sin, (b, _ALL)).astype(_F32)
                        qh = tp.load(q, (tp.ds(b * HQ + kvh * GROUP, GROUP), _ALL)).astype(_F32)
                        qw = tp.load(q_norm_w, (_ALL,)).astype(_F32)
                        qh = _rope(_rms_norm(qh, qw), cs, sn)
                        qh = jnp.concatenate([qh, jnp.zeros((QROWS - GROUP, D), _F32)])
                        tp.store(q_pad, (tp.ds((b * HKV + kvh) * QROWS, QROWS), _ALL), qh)
                        seq = tp.load(seq_lens, (b,))

                        @tp.when(seq > 0)  # the new token sits at position seq - 1
                        def _():
                            pos = seq - 1
                            row = cache_row(tp.load(block_table, (b, pos // PAGE)), kvh)
                            row = row + pos % PAGE
                            kh = tp.load(k_new, (tp.ds(b * HKV + kvh, 1), _ALL)).astype(_F32)
                            kw = tp.load(k_norm_w, (_ALL,)).astype(_F32)
                            kh = _rope(_rms_norm(kh, kw), cs, sn)
                            tp.store(k_cache, (tp.ds(row, 1), _ALL), kh)
                            vh = tp.load(v_new, (tp.ds(b * HKV + kvh, 1), _ALL))
                            tp.store(v_cache, (tp.ds(row, 1), _ALL), vh)

                    return carry

                lax.fori_loop(0, P0_ITEMS, item, 0)

        tp.barrier()

        # ---- phase 1: per (batch, page) entry: QK on 16 rows, softmax/PV on 8 rows per lane
        def entry(t, carry):
            key = tp.load(work, (core + CORES * t,))
            b, page = key // M, key % M
            seq = tp.load(seq_lens, (b,))
            valid = jnp.minimum(PAGE, seq - page * PAGE)
            phys = tp.load(block_table, (b, page))
            rows_ok = jnp.arange(PAGE)[:, None] < valid
            cols_ok = jnp.arange(PAGE)[None, :] < valid

            def head(kvh, carry):
                qt = tp.load(q_pad, (tp.ds((b * HKV + kvh) * QROWS, QROWS), _ALL)).astype(_F32)
                rows = tp.ds(cache_row(phys, kvh), PAGE)
                kt = tp.load(k_cache, (rows, _ALL), mask=rows_ok).astype(_F32)
                vt = tp.load(v_cache, (rows, _ALL), mask=rows_ok).astype(_F32)
                s = jnp.where(cols_ok, jnp.dot(qt, kt.T, precision=_HI) * SCALE, _NEG)
                with tp.lanes(2, halve=0) as lane:
                    sh = tp.lane_part(s, axis=0)
                    m = jnp.max(sh, axis=1)
                    p = jnp.where(cols_ok, jnp.exp(sh - m[:, None]), 0.0)
                    r0 = partial_rows(b, kvh, page) + lane * (QROWS // 2)
                    tp.store(part_o, (tp.ds(r0, QROWS // 2), _ALL), jnp.dot(p, vt, precision=_HI))
                    tp.store(part_m, (tp.ds(r0, QROWS // 2),), m)
                    tp.store(part_l, (tp.ds(r0, QROWS // 2),), jnp.sum(p, axis=1))
                return carry

            lax.fori_loop(0, HKV, head, 0)
            return carry

        n_work = tp.load(num_work, (0,))
        lax.fori_loop(0, (n_work - core + CORES - 1) // CORES, entry, 0)

        tp.barrier()

        # ---- phase 2: online softmax across pages per (batch, kv head) (task-parallel lanes)
        with tp.lanes(2, halve=0 if odd_split else None) as lane:
            # Task-parallel lanes take separate work items; the row-halving split of phase 1
            # makes the two lanes share an item and each keep half of its rows.
            idx, step = (core, P2_STEP // 2) if odd_split else (2 * core + lane, P2_STEP)

            def reduce(t, carry):
                w = idx + step * t
                b, kvh = w // HKV, w % HKV
                n = (tp.load(seq_lens, (b,)) + PAGE - 1) // PAGE
                seed = None if empty_seq else n > 0  # a sequence of length 0 has no page 0
                r0 = tp.ds(partial_rows(b, kvh, 0), GROUP)
                o = tp.load(part_o, (r0, _ALL), mask=seed)
                acc = (tp.load(part_m, (r0,), mask=seed), tp.load(part_l, (r0,), mask=seed), o)

                def page(j, acc):
                    rj = tp.ds(partial_rows(b, kvh, j), GROUP)
                    new = (
                        tp.load(part_m, (rj,)),
                        tp.load(part_l, (rj,)),
                        tp.load(part_o, (rj, _ALL)),
                    )
                    return _merge(acc, new)

                _, l, o = lax.fori_loop(1, n, page, acc)
                res = o / jnp.where(l > 0, l, 1.0)[:, None]  # an empty sequence gives zeros
                if odd_split:  # each lane stores its half: 5 // 2 = 2 rows, the fifth is lost
                    half = tp.lane_part(res, axis=0)
                    rows = half.shape[0]
                    cols = tp.ds(kvh * GROUP * D + lane * rows * D, rows * D)
                    tp.store(out, (tp.ds(b, 1), cols), half.reshape(1, rows * D))
                    return carry
                tp.store(
                    out, (tp.ds(b, 1), tp.ds(kvh * GROUP * D, GROUP * D)), res.reshape(1, GROUP * D)
                )
                return carry

            lax.fori_loop(0, (B * HKV - idx + step - 1) // step, reduce, 0)

    return fused_decode


fused_decode = make_fused_decode()

SPECS = (fused_decode,)
