"""Fast paths inside branches and loops, owned scratch, statically in-bounds accesses:
each must behave exactly as the general path.

The executor runs an access as a reshape (no gather, no scatter) when its starts are
concrete per program and tile the launch: at the top level, and now nested in a branch, a
call or a loop of one trip (run inline), loads in loops of several trips when their start is
loop-invariant, and stores there *accumulated* (last write wins).  A private tensor whose
leading dimensions are the program id gets a per-program slice instead of a copy of the
whole tensor per program (``Phase.owned``), and an access whose static starts keep it inside
the tensor skips its bounds flags.  Each kernel runs twice, with those paths and without
(``TILEPROOF_NO_FAST_PATH``): the outputs and every finding must be identical, for a correct
kernel (proved clean) and for each defect the flags exist for (lanes out of bounds that a
mask lets through, an element never written, two programs writing one tile, a program
reading another's scratch slice, a static start past the end).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.verify.numeric import execute
from tileproof.verify.numeric._plan import get_plan

SIZES = {"M": 4, "N": 100}
X = np.random.default_rng(2).standard_normal((4, 100)).astype(np.float32)


def _loop1(kind: str):
    """Row scale inside a single-trip fori_loop (layer norm's shape of loop)."""

    @tp.kernel(grid={"r": "M"}, tensors=dict(x=tp.Input(("M", "N")), y=tp.Output(("M", "N"))))
    def loop1(x, y):
        r = tp.program_id(0)
        n = tp.size("N")

        def body(i, acc):
            cols = i * 128 + jnp.arange(128)
            mask = cols < n + (3 if kind == "oob" else 0)
            row = tp.load(x, (r, tp.ds(i * 128, 128)), mask=mask)
            if kind == "hole":
                mask = mask & (r != 1)
            tp.store(
                y, (r // 2 if kind == "shared" else r, tp.ds(i * 128, 128)), row * 2, mask=mask
            )
            return acc + 1

        lax.fori_loop(0, 1, body, jnp.int32(0))

    loop1.name = f"loop1_{kind}"
    return loop1


def _branch(kind: str):
    """An unmasked store under a predicate (``when``): a guarded fast store."""

    @tp.kernel(
        grid={"r": "M", "c": 2}, tensors=dict(x=tp.Input(("M", 128)), y=tp.Output(("M", 128)))
    )
    def branch(x, y):
        r, c = tp.program_id(0), tp.program_id(1)
        v = tp.load(x, (r, tp.ds(c * 64, 64)))

        @tp.when(r != 2 if kind == "hole" else r >= 0)
        def _():
            start = c * 64 + (40 if kind == "oob" else 0)
            tp.store(y, (r, tp.ds(start, 64)), v + 1)

    branch.name = f"branch_{kind}"
    return branch


def _accumulate(kind: str):
    """A store in a loop of 3 trips at a loop-invariant tile: the last write must win."""

    @tp.kernel(grid={"r": "M"}, tensors=dict(x=tp.Input(("M", 128)), y=tp.Output(("M", 128))))
    def acc(x, y):
        r = tp.program_id(0)
        v = tp.load(x, (r, tp.ds(0, 128)))

        def body(i, a):
            w = tp.load(x, (r, tp.ds(0, 128)))  # a loop-invariant load
            m = jnp.arange(128) >= i * 10
            if kind == "hole":
                m = m & (r != 3)
            row = r // 2 if kind == "shared" else r
            tp.store(y, (row, tp.ds(0, 128)), a + w * i, mask=m)
            return a + 1.0

        lax.fori_loop(0, 3, body, v)

    acc.name = f"acc_{kind}"
    return acc


def _owned(kind: str):
    """Per-program scratch indexed by the program id (owned), or by a neighbour (not)."""

    @tp.kernel(
        grid={"r": "M"},
        tensors=dict(x=tp.Input(("M", 128)), s=tp.Scratch(("M", 128)), y=tp.Output(("M", 128))),
    )
    def owned(x, s, y):
        r = tp.program_id(0)
        tp.store(s, (r, tp.ds(0, 128)), tp.load(x, (r, tp.ds(0, 128))) * 3)
        src = (r + 1) % tp.num_programs(0) if kind == "neighbour" else r
        tp.store(y, (r, tp.ds(0, 128)), tp.load(s, (src, tp.ds(0, 128))))

    owned.name = f"owned_{kind}"
    return owned


def _inside(kind: str):
    """Static starts that tile nothing (rows in reverse): in bounds for every program, or
    past the end for program 0."""

    @tp.kernel(grid={"r": "M"}, tensors=dict(x=tp.Input(("M", 128)), y=tp.Output(("M", 128))))
    def inside(x, y):
        r = tp.program_id(0)
        v = tp.load(x, ((4 if kind == "oob" else 3) - r, tp.ds(0, 128)))
        tp.store(y, (r, tp.ds(0, 128)), v)

    inside.name = f"inside_{kind}"
    return inside


def _run(make, kind, fast: bool, monkeypatch):
    if fast:
        monkeypatch.delenv("TILEPROOF_NO_FAST_PATH", raising=False)
    else:
        monkeypatch.setenv("TILEPROOF_NO_FAST_PATH", "1")
    k = make(kind)  # a fresh kernel: plans are per kernel object
    x = X if "N" in k.sizes else X[:, :100].repeat(2, axis=1)[:, :128]
    out, flags = execute(k, SIZES if "N" in k.sizes else {"M": 4}, {"x": x})
    plan = get_plan(k, SIZES if "N" in k.sizes else {"M": 4})
    fast_sites = sum(len(ph.fast_load) + len(ph.fast_store) for ph in plan.phases)
    owned = sum(len(ph.owned) for ph in plan.phases)
    return x, np.asarray(out["y"]), [f.message for f in flags.findings()], fast_sites, owned


CASES = [
    (_loop1, "ok", None),
    (_loop1, "oob", "out-of-bounds load"),
    (_loop1, "hole", "never written"),
    (_loop1, "shared", "race: y"),
    (_branch, "ok", None),
    (_branch, "hole", "never written"),
    (_branch, "oob", "out-of-bounds store"),
    (_accumulate, "ok", None),
    (_accumulate, "hole", "never written"),
    (_accumulate, "shared", "race: y"),
    (_owned, "ok", None),
    (_owned, "neighbour", "race"),
    (_inside, "ok", None),
    (_inside, "oob", "out-of-bounds load"),
]


@pytest.mark.parametrize(
    ("make", "kind", "want"), CASES, ids=[f"{m.__name__[1:]}-{k}" for m, k, _ in CASES]
)
def test_nested_fast_paths_equal_the_general_path(make, kind, want, monkeypatch):
    _, y_fast, f_fast, _n, _own = _run(make, kind, True, monkeypatch)
    _x, y_slow, f_slow, n_slow, own_slow = _run(make, kind, False, monkeypatch)
    assert n_slow == 0 and own_slow == 0
    np.testing.assert_array_equal(y_fast, y_slow)
    assert f_fast == f_slow
    if want is None:
        assert not f_fast, f_fast
    else:
        assert any(want in m for m in f_fast), f_fast


def test_the_paths_are_taken(monkeypatch):
    """The correct twins run on the fast paths (or the comparison above proves nothing)."""
    assert _run(_loop1, "ok", True, monkeypatch)[3] == 2  # load and store in the loop
    assert _run(_branch, "ok", True, monkeypatch)[3] == 2  # the guarded store too
    assert _run(_accumulate, "ok", True, monkeypatch)[3] == 3  # both loads, the accumulated store
    assert _run(_owned, "ok", True, monkeypatch)[4] == 1
    assert _run(_owned, "neighbour", True, monkeypatch)[4] == 0  # not its own slice
    k = _inside("ok")
    plan = get_plan(k, {"M": 4})
    assert any(
        id(e) in plan.inside for ph in plan.phases for e in ph.eqns if e.primitive.name == "tp_load"
    )
    assert not any(ph.fast_load for ph in plan.phases)  # the general path, without flags


def test_accumulated_store_keeps_the_last_write(monkeypatch):
    x, y, findings, _n, _o = _run(_accumulate, "ok", True, monkeypatch)
    assert not findings
    want = np.empty_like(x)
    for i in range(3):  # program order: iteration i writes lanes >= 10 i with x + i + x * i
        lanes = np.arange(128) >= i * 10
        want[:, lanes] = (x + i + x * i)[:, lanes]
    np.testing.assert_allclose(y, want, rtol=1e-6)
