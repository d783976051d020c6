"""Red-team of the lowering (issue 10): specs that a concrete run shows buggy but that the
static verifier used to prove, each with a correct twin that must stay proved.

Classes: an ``iota`` longer than its dtype's range wraps; an integer division by the literal 0
is not modelled (unknown, not a crash); a loop carry reloaded from an index tensor keeps its
initial value in the value, not in a data range naming program ids (two-program queries); a
floor division ``INT_MIN // -1`` overflows; a user function named ``floor_divide`` is not jnp's;
an inner loop's first-pass placeholders are not the outer loop's (a carry that doubles).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.numeric import execute
from tileproof.verify.static import check_static


def _obs(kernel, kind):
    return [o for o in check_static(lower(kernel), kinds=("shape", kind)) if o.kind == kind]


def _proved(kernel, kind):
    obs = _obs(kernel, kind)
    assert obs and all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def _caught(kernel, kind, want=("violated", "unknown")):
    got = {o.status for o in _obs(kernel, kind)}
    assert got & set(want), got


# ------------------------------------------------------------- 1. iota wraps in its dtype


def _iota_mask(dtype, n: int):
    """A tile of ``n`` elements masked by ``p*n + iota(dtype, n) < N``: when ``n`` exceeds
    the dtype's range the iota wraps (``0..255, 0..``) and the mask lets the tail through."""

    @tp.kernel(
        grid={"p": f"cdiv(N, {n})"},
        assume=["N <= 4096"],
        tensors=dict(x=tp.Input(("N",)), o=tp.Output(("N",))),
    )
    def k(x, o):
        p, size = tp.program_id(0), tp.size("N")
        m = p * n + lax.iota(dtype, n).astype(jnp.int32) < size
        tp.store(o, (tp.ds(p * n, n),), tp.load(x, (tp.ds(p * n, n),), mask=m), mask=m)

    return k


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int8, jnp.int16])
def test_wrapping_iota_is_refuted(dtype):
    n = 512 if dtype != jnp.int16 else 65536
    _caught(_iota_mask(dtype, n), "bounds", want=("violated",))


@pytest.mark.parametrize("dtype,n", [(jnp.uint8, 256), (jnp.int8, 128), (jnp.int32, 512)])
def test_iota_that_fits_its_dtype_stays_proved(dtype, n):
    _proved(_iota_mask(dtype, n), "bounds")


def test_wrapping_iota_overruns_in_a_concrete_run():
    _out, flags = execute(_iota_mask(jnp.uint8, 512), {"N": 300}, {"x": np.ones(300, np.float32)})
    assert any("out-of-bounds" in f.message for f in flags.findings())


# ------------------------------------------------------- 2. division by the literal zero


_DIVS = {
    "floor_divide": lambda p: p // 0,
    "remainder": lambda p: p % 0,
    "div": lambda p: lax.div(p, 0),
    "rem": lambda p: lax.rem(p, 0),
}


def _divided(how, divisor_zero: bool):
    @tp.kernel(
        grid={"p": "N"}, assume=["N <= 64"], tensors=dict(x=tp.Input(("N",)), o=tp.Output(("N",)))
    )
    def k(x, o):
        p = tp.program_id(0)
        q = _DIVS[how](p) if divisor_zero else p // 2
        tp.store(o, (p,), tp.load(x, (jnp.minimum(q, p),)))

    return k


@pytest.mark.parametrize("how", sorted(_DIVS))
def test_division_by_literal_zero_is_unknown_not_a_crash(how):
    obs = check_static(lower(_divided(how, True)), kinds=("shape", "bounds", "unsupported"))
    assert any(o.kind == "unsupported" and o.status == "unknown" for o in obs)
    assert {o.status for o in obs if o.kind == "bounds"} == {"unknown"}


def test_division_by_a_nonzero_literal_stays_proved():
    _proved(_divided("floor_divide", False), "bounds")


# ------------------------------ 3. a carried index-tensor read in two-program queries


def _carried(racy: bool):
    """The carry starts at the program id and is reloaded from ``t`` (every entry 100).
    At iteration 0 the racy store writes ``o[c - p] = o[0]`` in every program."""

    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 64", "N >= 2"],
        tensors=dict(
            t=tp.Input(("N",), "int32", values="100 <= v < 101"),
            x=tp.Input(("N",)),
            o=tp.Output(("N",)),
        ),
    )
    def k(t, x, o):
        p = tp.program_id(0)

        def body(i, c):
            tp.store(o, (c - p if racy else c,), tp.load(x, (p,)), mask=c == p)
            return tp.load(t, (i,))

        lax.fori_loop(0, 2, body, p)

    return k


def test_carried_read_tied_to_the_program_id_races():
    _caught(_carried(True), "race", want=("violated",))


def test_carried_read_race_is_real_in_a_concrete_run():
    k = _carried(True)
    _out, flags = execute(
        k, {"N": 4}, {"t": np.full(4, 100, np.int32), "x": np.ones(4, np.float32)}
    )
    assert any(f.kind == "race" for f in flags.findings())


def test_carried_read_without_the_race_stays_proved():
    _proved(_carried(False), "race")


# ------------------------------------------------------ 4. INT_MIN // -1 overflows


def _floordiv_by_minus_one(narrow: bool):
    @tp.kernel(
        grid={"p": "N"}, assume=["N <= 64"], tensors=dict(x=tp.Input(("N",)), o=tp.Output(("N",)))
    )
    def k(x, o):
        p = tp.program_id(0)
        base = (p - 128) if narrow else (p - 127)
        q = base.astype(jnp.int8) // jnp.int8(-1)  # -128 // -1 is 128: not an int8
        tp.store(o, (p,), tp.load(x, (jnp.minimum(q.astype(jnp.int32), 0) + p,)))

    return k


def test_floor_division_overflow_is_refuted():
    _caught(_floordiv_by_minus_one(True), "overflow", want=("violated",))


def test_floor_division_in_range_stays_proved():
    _proved(_floordiv_by_minus_one(False), "overflow")


# ------------------------------- 5. jnp's floor division is recognised by body, not name


@jax.jit
def floor_divide(a, b):  # the user's own function, with jnp's name: a product
    return a * b


@jax.jit
def remainder(a, b):  # the user's own function, with jnp's name: a sum
    return a + b


def _named_call(fn):
    @tp.kernel(
        grid={"p": "N"}, assume=["N <= 64"], tensors=dict(x=tp.Input(("N",)), o=tp.Output(("N",)))
    )
    def k(x, o):
        p = tp.program_id(0)
        tp.store(o, (p,), tp.load(x, (fn(p, 2),)))

    return k


@pytest.mark.parametrize("fn", [floor_divide, remainder], ids=["floor_divide", "remainder"])
def test_a_function_named_like_jnp_division_is_not_a_division(fn):
    _caught(_named_call(fn), "bounds", want=("violated",))


@pytest.mark.parametrize(
    "fn",
    [lambda a, b: a // b, lambda a, b: a % b, jnp.floor_divide],
    ids=["floordiv", "mod", "jnp.floor_divide"],
)
def test_jnp_division_stays_proved(fn):
    _proved(_named_call(fn), "bounds")


# ---------------------------------------- 6. arithmetic JAX adds inside loops is located


def _walk(nodes):
    from tileproof.model import walk

    return walk(nodes)


def test_arithmetic_inside_loops_and_branches_names_a_line():
    """A fori_loop's own counter increment has no user frame; it is located at the loop, so
    the overflow check and its message name the file and line (none is left at line 0)."""

    @tp.kernel(
        grid={"p": "N"}, assume=["N <= 64"], tensors=dict(x=tp.Input(("N",)), o=tp.Output(("N",)))
    )
    def k(x, o):
        p = tp.program_id(0)

        def body(i, c):
            tp.store(o, (p,), tp.load(x, (lax.cond(i > 0, lambda: p, lambda: p * 1),)))
            return c + 1

        lax.fori_loop(0, 2, body, 0)
        lax.scan(lambda c, _: (c + 1, None), p, None, length=2)

    model = lower(k)
    located = [getattr(n, "loc", None) for n in _walk(model.body)]
    assert located and all(loc.line > 0 for loc in located if loc is not None)
    overflow = [o for o in check_static(model, kinds=("overflow",)) if o.kind == "overflow"]
    assert overflow and all(o.status == "proved" for o in overflow)


# ---------------------------- nested loops: first-pass placeholders of each loop its own


def _nested(bounded: str, doubling: bool):
    """An outer loop whose carry ``a`` grows by what an inner loop returns.

    ``doubling``: the inner body returns the *outer* carry (``a``), so ``a`` runs 1, 2, 4, 8
    and the store at ``a = 8`` overruns ``y``.  The inner loop's first pass used to name its
    carry's placeholder like the outer's (``_k1`` both), read ``a`` as its own carry,
    classified it invariant and lowered ``a`` as the constant 1: bounds proved.  Twin: the
    inner loop counts on its own carry (``c + 1``): ``a`` runs 1, 3, 5, 7, in bounds.
    ``bounded``: ``"static"`` loops (scans), or ``"dynamic"`` ones (while loops)."""
    trips = {"static": (4, 2), "dynamic": ("J", "K")}[bounded]

    @tp.kernel(grid={"p": 1}, assume=["J == 4", "K == 2"], tensors=dict(y=tp.Output(("8",))))
    def nested(y):
        outer_n, inner_n = (n if isinstance(n, int) else tp.size(n) for n in trips)

        def outer(j, a):
            tp.store(y, (tp.ds(a, 1),), jnp.zeros((1,)))
            got = lax.fori_loop(
                0, inner_n, (lambda i, c: a) if doubling else (lambda i, c: c + 1), 0
            )
            return a + got

        lax.fori_loop(0, outer_n, outer, 1)

    return nested


@pytest.mark.parametrize("bounded", ["static", "dynamic"])
def test_an_inner_loop_returning_the_outer_carry_is_not_an_invariant(bounded):
    kernel = _nested(bounded, doubling=True)
    _caught(kernel, "bounds")
    model = lower(kernel)
    stores = [n for n in _walk(model.body) if getattr(n, "kind", None) == "store"]
    assert all(not s.dims[0].start.is_const for s in stores), [str(s.dims[0]) for s in stores]


@pytest.mark.parametrize("bounded", ["static", "dynamic"])
def test_an_inner_loop_counting_on_its_own_carry_stays_proved(bounded):
    _proved(_nested(bounded, doubling=False), "bounds")
