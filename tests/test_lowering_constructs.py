"""Each construct lowers to the expected model (the listing is what users and the verifier see)."""

import re

import pytest
from specs import constructs as C

from tileproof.lowering import lower


def body(kernel) -> str:
    """The body listing without its line-number column, keeping nesting indentation."""
    text = lower(kernel).listing()
    lines = text.split("  body\n", 1)[1].splitlines()
    return "\n".join(ln[len("  L1234 ") :] for ln in lines)


def test_masked_copy():
    assert body(C.masked_copy).splitlines() == [
        "load  x[ds(64*i, 64)]  mask _c0 + 64*i < N",
        "store y[ds(64*i, 64)]  mask _c0 + 64*i < N",
    ]


def test_loops_static_and_traced_bounds():
    text = body(C.row_sum)
    assert "for i_" in text and "in [0, K):" in text
    assert "load  x[b, ds(32*i_" in text
    # the float-only static loop has no kernel operation inside: no node, nothing lost
    assert text.count("for ") == 2
    assert "store o[b, ds(0, 32)]" in text


def test_when_and_barrier_phases():
    text = body(C.two_phases)
    assert text.splitlines()[0] == "if p == 0:"
    assert "store s[ds(0, 4), ds(0, 16)]" in text.splitlines()[1]
    assert "barrier(grid)" in text
    assert text.index("barrier(grid)") < text.index("load  s[p, ds(0, 16)]")


def test_lanes_task_and_halving():
    text = body(C.lanes_kernel)
    assert "lanes lane in [0, 2) task-parallel:" in text
    assert "store o[2*c + lane, ds(0, 16), ds(0, 8)]" in text
    assert "halving axis 0:" in text
    assert "lane_part of tile [16, 8] along axis 0 / 2" in text


def test_early_exit_guards_the_rest():
    text = body(C.early_exit)
    assert text.splitlines()[0] == "unless-exited e % 2 == 0:"
    assert "  load  x[e, ds(0, 4)]" in text


def test_ring_provenance_through_loop_carry():
    m = lower(C.ring_east)
    text = m.listing()
    assert "ranks   r < n (mesh)" in text
    assert "fold chunk of rank r if True" in text
    # the carried chunk at step s came from rank r - (s - 1) - 1 = r - s after the receive
    assert re.search(
        r"sendrecv to r \+ 1 if r \+ 1 < n; from r - 1 if r - 1 >= 0 +\(chunk of rank r - i_\d+ \+ 1\)",
        text,
    )
    assert re.search(r"fold chunk of rank r - i_\d+ if r - i_\d+ >= 0", text)


def test_data_dependent_offset():
    text = body(C.gather_page)
    assert "load  table[b]  -> table_" in text
    assert re.search(r"load  pages\[ds\(16\*table_\d+, 16\), ds\(0, 8\)\]", text)
    m = lower(C.gather_page)
    (d,) = m.data.values()
    assert str(d.range) == f"0 <= {d.name} and {d.name} < P"


def test_unsupported_is_reported_with_its_line():
    m = lower(C.float_index)
    (u,) = m.unsupported
    assert "index of o depends on" in u.what
    assert u.loc.file.endswith("constructs.py") and u.loc.line > 0


@pytest.mark.parametrize(
    "k",
    [
        C.masked_copy,
        C.row_sum,
        C.two_phases,
        C.lanes_kernel,
        C.early_exit,
        C.ring_east,
        C.gather_page,
    ],
)
def test_constructs_lower_completely(k):
    assert lower(k).unsupported == []


def test_a_step_read_inside_the_loop_is_not_an_induction():
    """`c += table[i]` changes by a different amount each step: no closed form, so an index
    built from it is reported unsupported instead of being solved as c0 + s*table[...]."""
    import jax.numpy as jnp
    from jax import lax

    import tileproof.spec as tp

    @tp.kernel(
        grid={"b": 1},
        assume=["N <= 64"],
        tensors=dict(
            table=tp.Input(("N",), "int32", values="0 <= v < 4"),
            x=tp.Input((256,)),
            o=tp.Output((256,)),
        ),
    )
    def k(table, x, o):
        def body(i, c):
            off = c + tp.load(table, (i,))
            tp.store(o, (tp.ds(off, 1),), tp.load(x, (tp.ds(off, 1),)))
            return off

        lax.fori_loop(0, tp.size("N"), body, jnp.int32(0))

    m = lower(k)
    assert m.unsupported, m.listing()
    assert "not an induction" in m.unsupported[0].what
