"""Static ``coverage``: outputs written exactly once, scratch read only after it is written."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from specs.kernels import tiles

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _coverage(kernel):
    return [
        o for o in check_static(lower(kernel), kinds=("shape", "coverage")) if o.kind == "coverage"
    ]


def _one(obs, text):
    found = [o for o in obs if text in o.message or text in o.reason]
    assert found, [o.message for o in obs]
    return found[0]


def _compressor(fixed: bool):
    """Stage 1 fills a scratch in programs of 64 rows, stage 2 reads every row (docs/catalog.md §3)."""

    @tp.kernel(
        grid={"p": "cdiv(B*S, 64)"},
        assume=["B <= 64", "S <= 16"],
        tensors=dict(
            x=tp.Input(("B*S", 128)),
            kv_scratch=tp.Scratch(("B*S", 128)),
            out=tp.Output(("B*S", 128)),
        ),
    )
    def compressor(x, kv_scratch, out):
        p = tp.program_id(0)
        rows = tp.size("B") * tp.size("S")
        ok = (p * 64 + jnp.arange(64))[:, None] < rows
        full = p < rows // 64  # the buggy dispatch: spmd(B*S // 64) programs

        @tp.when(True if fixed else full)
        def _stage1():
            t = tp.load(x, (tp.ds(p * 64, 64), slice(None)), mask=ok if fixed else None)
            tp.store(kv_scratch, (tp.ds(p * 64, 64), slice(None)), t, mask=ok if fixed else None)

        tp.barrier("grid")
        s = tp.load(kv_scratch, (tp.ds(p * 64, 64), slice(None)), mask=ok)
        tp.store(out, (tp.ds(p * 64, 64), slice(None)), s * 2, mask=ok)

    return compressor


def _accumulate(index_uses_loop: bool):
    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 1024", "K <= 64"],
        tensors=dict(x=tp.Input(("P*8", "K*8")), y=tp.Output(("P*8", 8))),
    )
    def accumulate(x, y):
        p = tp.program_id(0)

        def body(k, acc):
            acc = acc + tp.load(x, (tp.ds(p * 8, 8), tp.ds(k * 8, 8)))
            # the same program rewrites its tile on every iteration: an accumulation
            col = k * 0 if not index_uses_loop else k % 1
            tp.store(y, (tp.ds(p * 8, 8), tp.ds(col, 8)), acc)
            return acc

        lax.fori_loop(0, tp.size("K"), body, jnp.zeros((8, 8)))

    return accumulate


@tp.kernel(
    grid={"p": "P"},
    assume=["P <= 1024"],
    tensors=dict(x=tp.Input(("P*8",)), y=tp.Output(("P*8 + 8",))),
)
def overlapping(x, y):
    p = tp.program_id(0)
    tp.store(y, (tp.ds(p * 8, 16),), jnp.zeros((16,)))  # tiles of 16 every 8: overlap


@tp.kernel(grid={"p": "P"}, assume=["P <= 1024"], tensors=dict(y=tp.Output(("P*8",))))
def two_stores(y):
    p = tp.program_id(0)
    tp.store(y, (tp.ds(p * 8, 8),), jnp.zeros((8,)))
    tp.store(y, (tp.ds(p * 8, 8),), jnp.ones((8,)))


# -------------------------------------------------------------------------------- tests


def test_cdiv_grid_covers_every_element_once():
    obs = _coverage(tiles("cdiv(N, 64)"))
    assert [o.status for o in obs] == ["proved", "proved"], [(o.message, o.reason) for o in obs]


def test_floor_div_grid_drops_the_tail():
    obs = _coverage(tiles("N // 64"))
    ex = _one(obs, "never written")
    assert ex.status == "violated"
    cx = ex.counterexample
    n, e = cx["N"], cx["element[0]"]
    assert 64 * (n // 64) <= e < n  # no program of the N // 64 covers it
    assert "_c0" not in ex.message and "of output y" in ex.message


def test_floor_div_dispatch_leaves_scratch_rows_unwritten_for_stage_two():
    obs = _coverage(_compressor(fixed=False))
    read = _one(obs, "kv_scratch")
    assert read.status == "violated"
    cx = read.counterexample
    rows = cx["B"] * cx["S"]
    assert rows % 64 != 0 and 64 * (rows // 64) <= cx["element[0]"] < rows
    assert (
        "never written before" in read.message and "read at test_verify_coverage.py" in read.message
    )
    assert "row" in read.message


def test_cdiv_dispatch_with_masked_tail_is_proved():
    obs = _coverage(_compressor(fixed=True))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_accumulation_over_a_loop_is_not_a_double_write():
    obs = _coverage(_accumulate(index_uses_loop=False))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_overlapping_tiles_are_written_twice():
    obs = _coverage(overlapping)
    twice = _one(obs, "written twice")
    assert twice.status == "violated"
    cx = twice.counterexample
    p1, p2, e = cx["p"], cx["p'"], cx["element[0]"]
    assert p1 != p2 and p1 * 8 <= e < p1 * 8 + 16 and p2 * 8 <= e < p2 * 8 + 16


def test_two_stores_of_one_tile_are_a_double_write():
    obs = _coverage(two_stores)
    twice = _one(obs, "written twice")
    assert twice.status == "violated" and "store at" in twice.message


# ------------------------------------------------- grid axes flattened over a symbolic divisor


def _groups(*, groups: str, use_mod: bool, scratch: bool):
    """GQA head blocks (docs/catalog.md §5): axis ``hb = kvh*G + g`` with ``G`` groups of 16 query
    rows per KV head; program ``hb`` writes rows ``GS*kvh + 16*g + c`` where ``16*g + c < GS``.
    ``groups`` is the host's ``G``; ``scratch`` puts the rows in a scratch read back by row."""

    @tp.kernel(
        grid={"b": "B", "hb": "Hkv*GS"},
        assume=["B <= 64", "Hkv <= 8", "GS <= 64"],
        tensors=dict(
            x=tp.Input(("B", "Hkv*GS", 32)),
            mid=tp.Scratch(("B", "Hkv*GS", 32)),
            y=tp.Output(("B", "Hkv*GS", 32)),
        ),
    )
    def groups_kernel(x, mid, y):
        b, hb = tp.program_id(0), tp.program_id(1)
        GS = tp.size("GS")
        G = eval(groups, {"GS": GS, "jnp": jnp})
        dst = mid if scratch else y

        @tp.when(hb < tp.size("Hkv") * G)
        def _():
            kvh = hb // G
            g = hb % G if use_mod else hb - kvh * G
            ok = (16 * g + jnp.arange(16)) < GS
            rows = tp.ds(GS * kvh + 16 * g, 16)
            t = tp.load(x, (b, rows, slice(None)), mask=ok[:, None])
            tp.store(dst, (b, rows, slice(None)), t, mask=ok[:, None])

        if scratch:
            tp.barrier("grid")
            tp.store(y, (b, hb, slice(None)), tp.load(mid, (b, hb, slice(None))))

    return groups_kernel


def test_flattened_axis_over_a_symbolic_divisor_covers_every_row_once():
    for use_mod in (False, True):
        obs = _coverage(_groups(groups="(GS + 15) // 16", use_mod=use_mod, scratch=False))
        assert [o.status for o in obs] == ["proved", "proved"], [(o.message, o.reason) for o in obs]


def test_flattened_axis_scratch_rows_are_written_before_read():
    obs = _coverage(_groups(groups="(GS + 15) // 16", use_mod=False, scratch=True))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_flattened_axis_with_floor_groups_drops_the_tail_rows():
    # G = max(GS // 16, 1): for GS = 17 one group of 16 rows, row 16 of each head never written
    obs = _coverage(_groups(groups="jnp.maximum(GS // 16, 1)", use_mod=True, scratch=True))
    read = _one(obs, "never written")
    assert read.status == "violated", (read.message, read.reason)
    cx = read.counterexample
    gs = cx["GS"]
    assert gs % 16 != 0 and gs > 16
    assert cx["element[1]"] % gs >= 16 * max(gs // 16, 1)


def test_flattened_axis_without_the_row_mask_writes_rows_twice():
    @tp.kernel(
        grid={"hb": "Hkv*GS"},
        assume=["Hkv <= 8", "GS <= 64"],
        tensors=dict(y=tp.Output(("Hkv*GS + 16",))),
    )
    def unmasked(y):
        hb, GS = tp.program_id(0), tp.size("GS")
        G = (GS + 15) // 16

        @tp.when(hb < tp.size("Hkv") * G)
        def _():
            tp.store(y, (tp.ds(GS * (hb // G) + 16 * (hb % G), 16),), jnp.zeros((16,)))

    obs = _coverage(unmasked)
    twice = _one(obs, "written twice")
    assert twice.status == "violated"


# ------------------------------------------------------------------------------ work tables


def _paged(*, declared: bool = True, seed_unmasked: bool = False, extra_page: bool = False):
    """Phase 1 grid-strides over a host-built table of (sequence, page) keys ``b*M + page``
    and writes one partial row per key; phase 2 reads the partials of every page of every
    sequence (docs/catalog.md §1).  ``seed_unmasked``: phase 2 reads page 0 even for an empty
    sequence; ``extra_page``: it reads one page past the sequence's last."""
    table = dict(values="0 <= v < B*M", distinct=True)
    if declared:
        table.update(
            enumerates="v % M < cdiv(seq, 16)",
            reads={"seq": ("seq_lens", "v // M"), "n": ("num_work", 0)},
            count="n",
        )

    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 8", "B <= 16", "M <= 8"],
        tensors=dict(
            seq_lens=tp.Input(("B",), "int32", values="0 <= v <= 16*M"),
            num_work=tp.Input((1,), "int32", values="0 <= v <= B*M"),
            work=tp.Input(("B*M",), "int32", **table),
            part=tp.Scratch(("B*M", 4)),
            out=tp.Output(("B", 4)),
        ),
    )
    def paged(seq_lens, num_work, work, part, out):
        p, P, M, B = tp.program_id(0), tp.size("P"), tp.size("M"), tp.size("B")
        n_work = tp.load(num_work, (0,))

        def entry(t, c):
            key = tp.load(work, (p + P * t,))
            b, page = key // M, key % M
            tp.store(part, (b * M + page, slice(None)), jnp.ones((4,)))
            return c

        lax.fori_loop(0, (n_work - p + P - 1) // P, entry, 0)
        tp.barrier("grid")

        def seq_(b, c):
            n = (tp.load(seq_lens, (b,)) + 15) // 16
            acc = tp.load(part, (b * M, slice(None)), mask=None if seed_unmasked else n > 0)

            def page(j, acc):
                return acc + tp.load(part, (b * M + j, slice(None)))

            acc = lax.fori_loop(1, n + (1 if extra_page else 0), page, acc)

            @tp.when(p == 0)
            def _():
                tp.store(out, (b, slice(None)), acc)

            return c

        lax.fori_loop(0, B, seq_, 0)

    return paged


def test_work_table_reads_of_every_page_are_written_before():
    obs = _coverage(_paged())
    reads = [o for o in obs if "reads only elements written before" in o.message]
    assert len(reads) == 2 and all(o.status == "proved" for o in reads), [
        (o.message, o.reason) for o in obs
    ]


def test_work_table_without_its_declaration_is_not_proved():
    obs = _coverage(_paged(declared=False))
    reads = [o for o in obs if "part at" in o.message and "reads only" in o.message]
    assert reads and all(o.status == "unknown" for o in reads)
    assert "through work" in reads[0].reason


def test_work_table_seed_of_an_empty_sequence_is_unwritten():
    obs = _coverage(_paged(seed_unmasked=True))
    bad = _one(obs, "never written before")
    assert bad.status == "violated"
    cx = bad.counterexample
    assert any(k.startswith("seq_lens[") and v == 0 for k, v in cx.items()), cx
    assert "seq_lens[" in bad.message


def test_work_table_page_past_the_sequence_is_unwritten():
    obs = _coverage(_paged(extra_page=True))
    bad = _one(obs, "never written before")
    assert bad.status == "violated"


def test_work_table_declared_read_out_of_bounds_is_a_bounds_violation():
    @tp.kernel(
        grid={"p": 1},
        assume=["B <= 16", "M <= 8"],
        tensors=dict(
            seq_lens=tp.Input(("B",), "int32", values="0 <= v <= 16*M"),
            work=tp.Input(
                ("B*M",),
                "int32",
                values="0 <= v < B*M",
                enumerates="v % M < seq",
                reads={"seq": ("seq_lens", "v // M + 1")},
            ),
            y=tp.Output((1,)),
        ),
    )
    def bad_read(seq_lens, work, y):
        tp.store(y, (0,), jnp.zeros(()))

    obs = check_static(lower(bad_read), kinds=("shape", "bounds"))
    ob = _one([o for o in obs if o.kind == "bounds"], "work table work")
    assert ob.status == "violated" and "seq_lens" in ob.message


def test_work_table_declaration_errors():
    import pytest

    with pytest.raises(tp.SpecError, match="depends on the key"):
        tp.Input(
            ("N",),
            "int32",
            values="0 <= v < N",
            enumerates="v < seq",
            reads={"seq": ("s", "v")},
            count="seq",
        )
    with pytest.raises(tp.SpecError, match="1-D index input"):
        tp.Input(("N",), "float32", values="0 <= v < N", enumerates="v < 3")
    with pytest.raises(tp.SpecError, match="no tensor of the kernel"):

        @tp.kernel(
            grid={"p": 1},
            tensors=dict(
                w=tp.Input(
                    ("N",),
                    "int32",
                    values="0 <= v < N",
                    enumerates="v < s",
                    reads={"s": ("lens", "v")},
                )
            ),
        )
        def k(w):
            pass


def test_build_enumeration_lists_live_keys_first():
    import numpy as np

    t = dict(
        seq_lens=tp.Input(("B",), "int32", values="0 <= v <= 128*M"),
        num_work=tp.Input((1,), "int32", values="0 <= v <= B*M"),
        work=tp.Input(
            ("B*M",),
            "int32",
            values="0 <= v < B*M",
            distinct=True,
            enumerates="v % M < cdiv(seq, 128)",
            reads={"seq": ("seq_lens", "v // M"), "n": ("num_work", 0)},
            count="n",
        ),
    )
    out = tp.build_enumeration(
        t, "work", dict(B=3, M=2), dict(seq_lens=np.array([0, 200, 5]), num_work=np.array([0]))
    )
    assert out["work"].tolist() == [2, 3, 4, 0, 1, 5]
    assert out["num_work"].tolist() == [3]
