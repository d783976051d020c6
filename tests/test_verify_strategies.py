"""Each decision strategy of the static checks compared with enumeration on small sizes.

Every strategy of :mod:`tileproof.verify.static._decide` (and the digit split and the
witness decision the pairwise and coverage checks add) is sound on its own: a proof
leaves no counterexample, a refutation evaluates as one, and a rewriting of the
problem is an equivalence.  Here each is run alone on small problems (hand-written
ones that name the trap, and seeded random ones) and checked against every integer
point of a box, under the shapes convention (a symbol is ``>= 1`` unless an
assumption ``NAME >= k`` declares otherwise).
"""

from __future__ import annotations

import itertools
import random

import pytest

from tileproof import shapes
from tileproof.shapes._context import declared_lower_bounds, weaker
from tileproof.verify.static._decide import (
    Decider,
    merge_equal_symbols,
    split_divisions,
    unmerge,
    unsplit,
)
from tileproof.verify.static._digits import split as split_digits
from tileproof.verify.static._divisions import proves_without_divisions
from tileproof.verify.static._writers import decide_witnesses

LO, HI = -2, 5  # the box: every symbol in [LO, HI)
a, b, c, g = shapes.symbols("a b c g")


# ------------------------------------------------------------------------- enumeration


def _points(names):
    names = sorted(names)
    for vals in itertools.product(range(LO, HI), repeat=len(names)):
        yield dict(zip(names, vals))


def _admissible(p, assume) -> bool:
    low = declared_lower_bounds(assume)
    if any(v < low.get(n, 1) for n, v in p.items()):
        return False
    try:
        return all(f.evaluate(p) for f in assume)
    except ZeroDivisionError:  # an assumption is false where it cannot be evaluated
        return False


def _holds(query, p) -> bool:
    try:
        return bool(query.evaluate(p))
    except ZeroDivisionError:
        return False


def _names(query, assume) -> set[str]:
    out = set(query.free_symbols())
    for f in assume:
        out |= f.free_symbols()
    return out


def _counterexample(query, assume):
    """A point of the box that satisfies ``assume`` and falsifies ``query``, or None."""
    for p in _points(_names(query, assume)):
        if _admissible(p, assume) and not _holds(query, p):
            return p
    return None


def _fresh() -> Decider:
    d = Decider()
    d.domain_status = "consistent"  # as after the shape check: unreachable means vacuous
    return d


def _check_answer(ans, query, assume, what: str) -> None:
    """A proof leaves no counterexample in the box; a refutation evaluates as one."""
    if ans is None:
        return
    if ans.status == "proved":
        assert _counterexample(query, assume) is None, (what, query, assume)
    elif ans.status == "refuted":
        names = _names(query, assume)  # internal names of a rewriting are not the problem's
        cex = {k: v for k, v in ans.cex.items() if k in names}
        assert _admissible(cex, assume) and not _holds(query, cex), (what, cex, query, assume)


# ---------------------------------------------------------------------------- problems

# hand-written problems, each the trap of one strategy
NAMED = [
    # a declaration of a's domain inside a nonlinear conjunction: dropping the conjunction
    # (linear first, local first) must not narrow a to its default a >= 1
    (
        "declaration in a dropped conjunction",
        shapes.ge(a, 1),
        [shapes.conj(shapes.ge(a, 0), shapes.lt(a, b * c))],
    ),
    (
        "declaration in a dropped conjunction, true twin",
        shapes.ge(a, 0),
        [shapes.conj(shapes.ge(a, 0), shapes.lt(a, b * c))],
    ),
    (
        "negative declaration far from the query",
        shapes.ge(a + b, 2),
        [shapes.conj(shapes.ge(b, -2), shapes.le(b * c, 5)), shapes.ge(a, 1)],
    ),
    (
        "equal symbols keep the larger lower bound",
        shapes.ge(a, 2),
        [shapes.eq(a, b), shapes.ge(b, 2), shapes.ge(a, -1)],
    ),
    ("equal symbols, refuted", shapes.ge(a, 3), [shapes.eq(a, b), shapes.ge(b, 2)]),
    ("division split keeps the dividend's domain", shapes.ge(a // g, 0), [shapes.ge(a, -2)]),
    ("division split, true twin", shapes.ge(a // g, 0), [shapes.ge(a, 0)]),
    ("remainder below the divisor", shapes.lt(a % g, g), [shapes.ge(a, -2)]),
    ("relaxation: products as opaque symbols", shapes.le(a * b, a * b + 1), [shapes.ge(a, 0)]),
    (
        "relaxation must not prove a false product fact",
        shapes.ge(a * b, 1),
        [shapes.ge(a, 0), shapes.ge(b, 0)],
    ),
    (
        "query among the assumptions",
        shapes.conj(shapes.ge(a, 2), shapes.lt(b, 4)),
        [shapes.lt(b, 4), shapes.ge(a, 2)],
    ),
]


def _random_expr(rng: random.Random, depth: int = 0) -> shapes.Expr:
    x, y = rng.sample([a, b, c, g], 2)
    pick = rng.randrange(9 if depth == 0 else 5)
    if pick == 0:
        return x
    if pick == 1:
        return x + rng.randint(-3, 3) * y + rng.randint(-2, 2)
    if pick == 2:
        return x * y
    if pick == 3:
        return x // rng.choice([2, 3]) + y
    if pick == 4:
        return x % 3 + rng.randint(0, 2)
    if pick == 5:
        return x // g if x is not g else a // g
    if pick == 6:
        return x % g if x is not g else b % g
    if pick == 7:
        return shapes.minimum(x, y + 1)
    return _random_expr(rng, depth + 1) + _random_expr(rng, depth + 1)


def _random_cmp(rng: random.Random) -> shapes.Formula:
    op = rng.choice([shapes.lt, shapes.le, shapes.ge, shapes.eq, shapes.ne])
    return op(
        _random_expr(rng), rng.choice([_random_expr(rng), shapes.as_expr(rng.randint(-2, 6))])
    )


def _random_problem(rng: random.Random):
    assume = [_random_cmp(rng) for _ in range(rng.randint(0, 3))]
    for s in rng.sample(["a", "b", "c"], rng.randint(0, 2)):  # some declared domains
        decl = shapes.ge(shapes.sym(s), rng.choice([-2, 0, 2]))
        if rng.random() < 0.5 and assume:  # hidden in a conjunction
            assume[0] = shapes.conj(decl, assume[0])
        else:
            assume.append(decl)
    if rng.random() < 0.3:
        assume.append(shapes.eq(a, b))
    return _random_cmp(rng), [f for f in assume if f != shapes.conj()]


RANDOM = [_random_problem(random.Random(seed)) for seed in range(60)]
PROBLEMS = [(q, tuple(f)) for _n, q, f in NAMED] + [(q, tuple(f)) for q, f in RANDOM]


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("name,query,assume", NAMED, ids=[n for n, _q, _a in NAMED])
def test_named_problems_are_decided_as_enumeration_says(name, query, assume):
    ans = _fresh().decide(query, tuple(assume))
    _check_answer(ans, query, tuple(assume), name)
    expect = "refuted" if _counterexample(query, tuple(assume)) else "proved"
    assert ans.status == expect, (name, ans)


def test_every_strategy_alone_agrees_with_enumeration():
    for query, assume in PROBLEMS:
        d = _fresh()
        _check_answer(d.decide(query, assume), query, assume, "decide")
        _check_answer(d._linear_first(query, assume), query, assume, "linear first")
        _check_answer(d._relaxed(query, assume), query, assume, "relaxed")
        _check_answer(d._local_first(query, assume), query, assume, "local first")
        _check_answer(d._answer(d._prove(query, assume), query, assume), query, assume, "full")


DIVISIONS = [  # nested, shifted and ceiling divisions, true and false
    (shapes.ge((a // g) // b, 0), (shapes.ge(a, 0),)),
    (shapes.ge((a // g) // b, 0), (shapes.ge(a, -2),)),
    (shapes.le((a + 1) // g, a // g + 1), (shapes.ge(a, -2),)),
    (shapes.le((a + 1) // g, a // g), (shapes.ge(a, -2),)),
    (shapes.lt((a - 1) % g, g), (shapes.ge(a, -2),)),
    (shapes.ge(shapes.cdiv(a, g) * g, a), (shapes.ge(a, -2), shapes.le(a * b, 6))),
    (shapes.ge(shapes.cdiv(a, g), a // g + 1), (shapes.ge(a, 0),)),
    (shapes.le(g * (a // g), a), (shapes.eq(a, c), shapes.ge(c, -2))),
    (shapes.lt(a // g, b), (shapes.lt(a, b * g), shapes.ge(a, 0))),
    (shapes.lt(a // g, b), (shapes.conj(shapes.ge(a, -2), shapes.lt(a, b * g)),)),
]


def test_dividing_out_agrees_with_enumeration():
    for query, assume in DIVISIONS + PROBLEMS:
        if proves_without_divisions(
            _fresh(), query, assume, domain=assume, sizes=("a", "b", "c", "g")
        ):
            assert _counterexample(query, assume) is None, (query, assume)


def test_dividing_out_proves_the_true_ones():
    proved = [
        proves_without_divisions(_fresh(), q, a, domain=a, sizes=("a", "b", "c", "g"))
        for q, a in DIVISIONS
    ]
    assert sum(proved) >= 4, proved  # the strategy is not vacuous


def test_a_subset_of_the_assumptions_admits_every_point_of_the_whole():
    for query, assume in PROBLEMS:
        parts = list(assume)
        for k in range(len(parts)):
            kept = weaker(parts, parts[:k] + parts[k + 1 :])
            for p in _points(_names(query, assume)):
                if _admissible(p, parts):
                    assert _admissible(p, kept), (p, parts, kept)


def test_merging_equal_symbols_is_an_equivalence():
    seen = 0
    for query, assume in PROBLEMS:
        merged = merge_equal_symbols(query, assume)
        if merged is None:
            continue
        seen += 1
        q2, a2, ren = merged
        for p in _points(_names(query, assume)):  # old point -> new point
            if _admissible(p, assume):
                p2 = {k: v for k, v in p.items() if k not in ren}
                assert _admissible(p2, a2) and _holds(q2, p2) == _holds(query, p)
        for p2 in _points(_names(q2, a2)):  # new point -> old point
            if _admissible(p2, a2):
                p = unmerge(p2, ren)
                assert _admissible(p, assume) and _holds(query, p) == _holds(q2, p2)
    assert seen >= 5


def test_splitting_divisions_is_an_equivalence():
    seen = 0
    for query, assume in PROBLEMS:
        quot = _fresh()._divisions(query, assume)
        if not quot:
            continue
        seen += 1
        q2, a2 = split_divisions(query, assume, quot)
        new = {n for _x, _g, q, r in quot.splits for n in (q, r)}
        for p in _points(_names(query, assume)):  # old point -> new point
            if _admissible(p, assume):
                p2 = {k: v for k, v in p.items() if k not in {x for x, *_ in quot.splits}}
                for x, gx, q, r in quot.splits:
                    p2[q], p2[r] = p[x] // gx.evaluate(p), p[x] % gx.evaluate(p)
                assert _admissible(p2, a2) and _holds(q2, p2) == _holds(query, p)
        for p2 in _points(_names(q2, a2)):  # new point -> old point
            if _admissible(p2, a2):
                p = {k: v for k, v in unsplit(p2, quot).items() if k not in new}
                assert _admissible(p, assume) and _holds(query, p) == _holds(q2, p2)
    assert seen >= 5


# a store's index against another's: digits at place values (``M`` a shared size)
M = shapes.sym("M")
DIGITS = [
    # (index of instance 1, index of instance 2, ranges of the private names)
    (
        8 * M * a + 8 * b + c,
        8 * M * shapes.sym("a2") + 8 * shapes.sym("b2") + shapes.sym("c2"),
        {"a": (0, 2), "b": (0, "M"), "c": (0, 8), "a2": (0, 2), "b2": (0, "M"), "c2": (0, 8)},
    ),
    (
        8 * a + c,
        8 * shapes.sym("a2") + shapes.sym("c2"),  # c reaches 8: not a digit
        {"a": (0, 3), "c": (0, 9), "a2": (0, 3), "c2": (0, 9)},
    ),
    (
        M * a + b,
        M * shapes.sym("a2") + shapes.sym("b2"),
        {"a": (0, 3), "b": (0, "M"), "a2": (0, 3), "b2": (0, "M")},
    ),
    (
        4 * a + 2 * b + c,
        4 * shapes.sym("a2") + 2 * shapes.sym("b2") + shapes.sym("c2"),
        {"a": (0, 3), "b": (0, 2), "c": (0, 3), "a2": (0, 3), "b2": (0, 2), "c2": (0, 3)},
    ),
    (
        M * a + b,
        2 * M * shapes.sym("a2") + shapes.sym("b2"),  # different place values
        {"a": (0, 4), "b": (0, "M"), "a2": (0, 2), "b2": (0, "M")},
    ),
]


def _digit_box(ranges):
    """Every assignment of the private names within their ranges, ``1 <= M <= 4``."""
    names = sorted(ranges)
    for m in range(1, 5):
        spans = [range(lo, m if hi == "M" else hi) for lo, hi in (ranges[n] for n in names)]
        for vals in itertools.product(*spans):
            yield {"M": m, **dict(zip(names, vals))}


@pytest.mark.parametrize("ea,eb,ranges", DIGITS)
def test_digit_split_is_an_equivalence_where_applied(ea, eb, ranges):
    mine_a = {n for n in ranges if not n.endswith("2")}
    box = list(_digit_box(ranges))

    def private(atom) -> bool:
        return bool(shapes.Expr.atom(atom).free_symbols() - {"M"})

    def bounded(side, low, h) -> bool:  # 0 <= low < h wherever that side runs
        ren = {} if side == "a" else {n: shapes.sym(n + "2") for n in mine_a}
        lo, hi = low.subs(ren), h.subs(ren)
        return all(0 <= lo.evaluate(p) < hi.evaluate(p) for p in box)

    pairs = split_digits(ea, eb, private, bounded)
    for p in box:
        whole = ea.evaluate(p) == eb.evaluate(p)
        parts = all(x.evaluate(p) == y.evaluate(p) for x, y in pairs)
        assert whole == parts, (p, pairs)


def test_witness_decision_agrees_with_enumeration():
    rng = random.Random(7)
    for _ in range(25):
        cands = [_random_cmp(rng) for _ in range(rng.randint(1, 3))]
        q = shapes.disj(*cands)
        assume = tuple(_random_cmp(rng) for _ in range(rng.randint(0, 2)))
        ans = decide_witnesses(_fresh(), cands, q, assume)
        _check_answer(ans, q, assume, "witnesses")


# ------------------------------------------------------------- the same through a spec


def _min_index_kernel(assumption: str):
    """``x[min(0, N - 1)]`` with ``N``'s domain declared inside a nonlinear assumption: at
    ``N = 0`` (where admitted) the index is ``-1``.  The linear-first attempt drops the
    nonlinear conjunction and, before the fix, with it the declaration, so ``N >= 1`` (the
    default) proved the load in bounds."""
    import jax.numpy as jnp

    import tileproof.spec as tp

    @tp.kernel(
        grid={"b": "B"},
        assume=[assumption, "B <= 4"],
        tensors=dict(x=tp.Input(("M",)), y=tp.Output(("B",))),
    )
    def k(x, y):
        b = tp.program_id(0)
        n = tp.size("N")
        tp.store(y, (b,), tp.load(x, (jnp.minimum(n - 1, 0),)))

    return k


def _bounds_of_x(assumption: str):
    from tileproof.lowering import lower
    from tileproof.verify.static import check_static

    obs = check_static(lower(_min_index_kernel(assumption)), kinds=("shape", "bounds"))
    return next(o for o in obs if o.kind == "bounds" and "load x" in o.message)


@pytest.mark.parametrize(
    "assumption",
    [
        "N >= 0 and N*M <= 64",
        "0 <= N and N*M <= 64",
        "N > -1 and N*M <= 64",
        "N*M <= 64 and N >= -3",
    ],
)
def test_a_declaration_inside_a_nonlinear_assumption_is_kept(assumption):
    ob = _bounds_of_x(assumption)
    assert ob.status == "violated", ob
    assert ob.counterexample["N"] <= 0 and ob.counterexample["element[0]"] < 0


@pytest.mark.parametrize(
    "assumption",
    [
        "N >= 1 and N*M <= 64",
        "1 <= N and N*M <= 64",
        "N > 0 and N*M <= 64",
        "N*M <= 64",
    ],
)
def test_a_declaration_inside_a_nonlinear_assumption_twin_is_proved(assumption):
    assert _bounds_of_x(assumption).status == "proved"
