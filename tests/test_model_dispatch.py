"""Model node kinds are dispatched on, not matched by ``isinstance`` chains (issue 11).

Each kind lists itself (``Node.list_into``); the site builder says once per kind how a
node runs its body.  A kind neither knows is an error, never silently a leaf: a body the
site builder skipped would have no sites, so nothing in it would be checked (and a
listing that skipped it would hide it from the reader).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import tileproof.model as M
from tileproof import shapes
from tileproof.spec._errors import Location
from tileproof.verify.static._sites import grid_barriers, sites_of

HERE = Location("k.py", 3)


def _kinds() -> list[type[M.Node]]:
    out, todo = [], list(M.Node.__subclasses__())
    while todo:
        k = todo.pop()
        out.append(k)
        todo.extend(k.__subclasses__())
    return [k for k in out if k.__module__.startswith("tileproof.")]


def test_every_node_kind_says_how_it_is_listed():
    kinds = _kinds()
    assert {k.__name__ for k in kinds} >= {
        "Access",
        "Loop",
        "Branch",
        "Lanes",
        "Barrier",
        "Unsupported",
        "Arith",
        "Divide",
        "Claim",
    }
    assert [k.__name__ for k in kinds if k.list_into is M.Node.list_into] == []


def test_every_node_kind_is_registered_with_the_checks_that_read_its_expressions():
    """The shape check (divisors of every expression a node evaluates) and the overflow
    check (which names steer the schedule) say per kind what a node holds; a kind they do
    not know is refused (shape) or keeps every obligation (overflow), never skipped."""
    from tileproof.verify.static._overflow import _steers
    from tileproof.verify.static._shape import _node_exprs

    for table in (_node_exprs, _steers):
        default = table.registry[object]
        missing = [k.__name__ for k in _kinds() if table.dispatch(k) is default]
        assert missing == (["Unsupported"] if table is _steers else []), (table, missing)
    with pytest.raises(NotImplementedError, match="_Note"):
        _node_exprs(_Note())
    assert _steers(_Note()) is None  # unknown: every arithmetic obligation is kept


@dataclass(eq=False)
class _Repeat(M.Node):
    """A container kind nobody registered: runs ``body`` (how often is not said)."""

    body: list[M.Node]
    loc: Location = HERE

    def children(self) -> list[M.Node]:
        return list(self.body)

    def list_into(self, model, depth, out):
        out.append("repeat:")


@dataclass(eq=False)
class _Note(M.Node):
    """A leaf kind nobody registered in the site builder: a leaf needs no registration."""

    loc: Location = HERE


def _store() -> M.Access:
    return M.Access("store", "y", (M.Dim(shapes.sym("p"), 1, True),), None, HERE)


def test_an_unregistered_container_is_refused_not_skipped():
    body = [_Repeat([M.Barrier("grid", HERE), _store()])]
    with pytest.raises(NotImplementedError, match="_Repeat"):
        sites_of(body)
    with pytest.raises(NotImplementedError, match="_Repeat"):
        grid_barriers(body)


def test_registered_containers_and_unregistered_leaves_are_walked():
    loop = M.Loop(
        "i", shapes.as_expr(0), shapes.sym("N"), [M.Barrier("grid", HERE), _store()], HERE
    )
    sites = sites_of([_Note(), loop])
    assert [type(s.node).__name__ for s in sites] == ["_Note", "Loop", "Barrier", "Access"]
    assert sites[3].loops == (loop,) and str(sites[3].phase) != "0"  # one barrier per trip


def test_a_node_kind_without_a_listing_is_refused():
    model = M.Model("k", "k.py:1", ["N"], [], [("p", shapes.sym("N"))], {}, [_Note()])
    with pytest.raises(NotImplementedError, match="_Note"):
        model.listing()
    model.body = [_Repeat([]), _store()]
    assert model.listing().splitlines()[-2:] == ["repeat:", "  L3    store y[p]"]
