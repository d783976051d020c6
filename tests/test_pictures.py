"""The model's concrete interpreter against scalar Python, and the pictures drawn from it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _helpers import line_of
from specs import constructs as C

from tileproof import cli, shapes
from tileproof import model as E
from tileproof.lowering import lower
from tileproof.model._eval import evaluate, holds
from tileproof.show import _pictures as P


def schedule(kernel, **sizes):
    model = lower(kernel)
    return E.run(model, E.resolve_sizes(model, sizes, kernel.defaults))


# ------------------------------------------------------------------ evaluation


def test_expressions_use_python_floor_semantics_on_arrays():
    n, d = shapes.symbols("n d")
    vals = np.arange(-9, 10)
    env = {"n": vals, "d": 4}
    for expr, py in (
        (n // d, lambda v: v // 4),
        (n % d, lambda v: v % 4),
        (shapes.cdiv(n, d), lambda v: -(-v // 4)),
        (shapes.minimum(n, 2) * 3, lambda v: min(v, 2) * 3),
        (abs(n) + n * n, lambda v: abs(v) + v * v),
    ):
        assert evaluate(expr, env).tolist() == [py(int(v)) for v in vals], str(expr)
        assert [expr.evaluate({"n": int(v), "d": 4}) for v in vals] == [py(int(v)) for v in vals]
    assert holds((n < 0) | shapes.eq(n % 2, 0), env).tolist() == [v < 0 or v % 2 == 0 for v in vals]


def test_division_by_zero_is_an_error_not_zero():
    n, d = shapes.symbols("n d")
    with pytest.raises(E.RunError, match="divides by zero"):
        evaluate(n // d, {"n": np.arange(3), "d": 0})


def scalar_writes(kernel, sizes, tensor):
    """Store counts by a plain per-program Python walk of the model (no numpy, no batching):
    the interpreter's own test oracle, an independent re-statement of the semantics for
    kernels without index tensors -- nothing else uses it."""
    model = lower(kernel)
    shape = tuple(int(d.evaluate(sizes)) for d in model.tensors[tensor].shape)
    counts = np.zeros(shape, dtype=int)
    axes = [(n, e.evaluate(sizes)) for n, e in model.grid]

    def walk(nodes, env):
        for node in nodes:
            kind = type(node).__name__
            if kind == "Loop":
                for i in range(node.lo.evaluate(env), node.hi.evaluate(env)):
                    if not walk(node.body, {**env, node.var: i}):
                        return False
            elif kind == "Branch":
                taken = node.cond.evaluate(env)
                if node.exit and not taken:
                    return False
                walk(node.then if taken else node.orelse, env)
            elif kind == "Lanes":
                for lane in range(node.n):
                    walk(node.body, {**env, node.var: lane})
            elif kind == "Access" and node.kind == "store" and node.tensor == tensor:
                sizes_ = [d.size for d in node.dims if not d.point]
                for coords in itertools.product(*(range(s) for s in sizes_)):
                    cenv = {**env, **{f"_c{k}": c for k, c in enumerate(coords)}}
                    if node.mask is None or node.mask.evaluate(cenv):
                        counts[tuple(e.evaluate(cenv) for e in node.element())] += 1
        return True

    for ids in itertools.product(*(range(e) for _, e in axes)):
        walk(model.body, {**sizes, **dict(zip((n for n, _ in axes), ids))})
    return counts


@pytest.mark.parametrize(
    ("kernel", "sizes", "tensor"),
    [
        (C.masked_copy, {"N": 1}, "y"),
        (C.masked_copy, {"N": 130}, "y"),
        (C.row_sum, {"B": 3, "K": 2}, "o"),
        (C.two_phases, {}, "s"),
        (C.two_phases, {}, "o"),
        (C.lanes_kernel, {}, "o"),
        (C.early_exit, {}, "o"),
    ],
)
def test_store_counts_match_a_scalar_walk(kernel, sizes, tensor):
    counts, outside = schedule(kernel, **sizes).writes(tensor)
    assert outside == 0
    np.testing.assert_array_equal(counts, scalar_writes(kernel, sizes, tensor))


def test_known_coverage_facts():
    counts, _ = schedule(C.early_exit).writes("o")
    assert counts[0::2].min() == 1 and counts[1::2].max() == 0  # odd programs exit first
    counts, _ = schedule(C.lanes_kernel).writes("o")
    assert counts[:2].tolist() == np.ones((2, 16, 8)).tolist() and counts[2:].min() == 2


def test_phases_count_grid_barriers():
    s = schedule(C.two_phases)
    by_kind = {(ev.node.kind, ev.node.tensor): set(ev.phase.tolist()) for ev in s.accesses}
    assert by_kind[("store", "s")] == {0} and by_kind[("load", "s")] == {1}
    (bar,) = s.barriers
    assert bar.program.tolist() == [0, 1, 2, 3]


def test_ring_folds_and_receives():
    s = schedule(C.ring_east, n=4)
    folded = {r: [] for r in range(4)}
    for ev in s.folds:
        for r, c, ok in zip(ev.env["r"].tolist(), ev.chunk.tolist(), ev.cond.tolist()):
            if ok:
                folded[r].append(c)
    assert {r: sorted(c) for r, c in folded.items()} == {
        0: [0],
        1: [0, 1],
        2: [0, 1, 2],
        3: [0, 1, 2, 3],
    }


def test_index_tensor_data_is_sampled_in_range_and_read_consistently():
    s = schedule(C.gather_page, B=5, P=3)
    table = s.data["table"]
    assert table.shape == (5,) and table.min() >= 0 and table.max() < 3
    (pages,) = [ev for ev in s.accesses if ev.node.tensor == "pages"]
    rows = pages.element[0].reshape(5, 16 * 8)[:, 0]  # the first element of each program's tile
    assert rows.tolist() == (16 * table).tolist()


def test_given_data_outside_its_range_is_refused():
    model = lower(C.gather_page)
    with pytest.raises(E.RunError, match=r"table\[1\] = 7 is outside its declared range"):
        E.run(model, {"B": 2, "P": 3}, data={"table": [0, 7]})


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({}, "needs concrete values for B, K"),
        ({"B": 65, "K": 1}, "B <= 64 does not hold"),
        ({"B": 1, "K": 1, "Q": 2}, "has no size named Q"),
        ({"B": 0, "K": 1}, "below its minimum 1"),
    ],
)
def test_size_errors_say_what_to_pass(given, fragment):
    with pytest.raises(E.RunError, match=fragment):
        E.resolve_sizes(lower(C.row_sum), given)


def test_runs_beyond_the_budget_stop_with_a_message():
    model = lower(C.masked_copy)
    with pytest.raises(E.RunError, match="exceeds 100 events"):
        E.run(model, {"N": 1000}, budget=100)


# -------------------------------------------------------------------- pictures


def colours(path) -> set[tuple[int, int, int]]:
    from matplotlib.image import imread

    img = imread(path)
    rgb = (img[..., :3] * 255).round().astype(int).reshape(-1, 3)
    return {tuple(c) for c in np.unique(rgb, axis=0)}


def hex_rgb(h: str) -> tuple[int, int, int]:
    return tuple(int(h[i : i + 2], 16) for i in (1, 3, 5))


def image_size(path) -> tuple[int, int]:
    from matplotlib.image import imread

    h, w = imread(path).shape[:2]
    return w, h


def test_coverage_picture_shows_never_once_twice_and_the_mark(tmp_path):
    out = tmp_path / "cov.png"
    assert P.coverage(schedule(C.lanes_kernel), str(out)) == ["o"]
    w, h = image_size(out)
    assert w >= 600 and h >= 300
    cs = colours(out)
    assert {hex_rgb(c) for c in P.COVERAGE_COLORS[1:]} <= cs  # written once, written twice
    out2 = tmp_path / "exit.png"
    P.coverage(schedule(C.early_exit), str(out2), mark=(None, (1, 0)))
    assert {hex_rgb(P.COVERAGE_COLORS[0]), hex_rgb(P.COVERAGE_COLORS[1]), (0, 0, 0)} <= colours(
        out2
    )
    assert len(colours(out2)) > 8


def test_ring_picture_highlights_missing_chunks(tmp_path):
    out = tmp_path / "ring.png"
    info = P.ring(schedule(C.ring_east, n=5), str(out))
    assert (
        info["missing"] == {0: [1, 2, 3, 4], 1: [2, 3, 4], 2: [3, 4], 3: [4]} and info["steps"] == 5
    )
    assert {hex_rgb(P._MISSING), hex_rgb(P._FOLD_OK)} <= colours(out)
    assert image_size(out)[0] >= 500


def test_timeline_picture(tmp_path):
    out = tmp_path / "t.png"
    info = P.timeline(schedule(C.two_phases), str(out))
    assert info == {"phases": 2, "programs": 4, "barrier_skips": {}, "exits": 0}
    assert len(colours(out)) > 8 and image_size(out)[1] >= 200
    info = P.timeline(schedule(C.early_exit), str(tmp_path / "e.png"))
    assert info["exits"] == 4


def test_show_command_draws_all_three(tmp_path, capsys):
    spec = "tests/specs/constructs.py"
    cov, ring, tl = (str(tmp_path / f) for f in ("c.png", "r.png", "t.png"))
    assert (
        cli.main(["show", f"{spec}:early_exit", "--coverage", cov, "--violation", "coverage"]) == 0
    )
    assert (
        cli.main(["show", f"{spec}:ring_east", "--sizes", "n=4", "--ring", ring, "--timeline", tl])
        == 0
    )
    out, err = capsys.readouterr()
    assert f"wrote {cov} (coverage: o)" in out and f"wrote {ring} (ring:" in out
    store = line_of(spec, "tp.store(o, (e, slice(None)), tp.load(x, (e, slice(None))))")
    assert f"constructs.py:{store}: coverage:" in err  # the violation drawn: early_exit's store


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["tests/specs/constructs.py:row_sum", "--ring", "x.png", "--sizes", "B=2,K=1"],
            "has no ranks",
        ),
        (
            ["tests/specs/constructs.py:row_sum", "--coverage", "x.png"],
            "Pass them as --sizes B=...,K=...",
        ),
        (
            ["tests/specs/constructs.py:row_sum", "--coverage", "x.png", "--sizes", "B=x"],
            "cannot read 'B=x'",
        ),
        (["tests/specs/constructs.py:row_sum"], "nothing to draw"),
        (["tests/specs/constructs.py:nope", "--coverage", "x.png"], "has no kernel named 'nope'"),
        (
            [
                "tests/specs/constructs.py:masked_copy",
                "--sizes",
                "N=4",
                "--coverage",
                "/nonexistent/d/x.png",
            ],
            "cannot write /nonexistent/d/x.png",
        ),
    ],
)
def test_show_errors_are_one_paragraph(argv, fragment, capsys):
    assert cli.main(["show", *argv]) == 2
    _out, err = capsys.readouterr()
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
