"""The numeric executor on the same size points and index fillings as the oracle.

Run-time flags map to oracle keys: out-of-bounds loads and stores to
``("bounds", line)``, poisoned reads of scratch to ``("read", line)``, races
(write-write and read-write) to every ``("race", line)`` of the tensor's
stores, an unwritten output to ``("exists", tensor)``, a program leaving
before a grid barrier to ``("barrier", line)``.  A ``proved`` obligation whose
key the executor flags is unsound; a flag the oracle disagrees with on an
exactly observed key (bounds, unwritten outputs) is an executor disagreement.
"""

from __future__ import annotations

import numpy as np

from ._problem import Problem

__all__ = ["cross_check", "flag_keys"]


def flag_keys(findings, desc) -> set:
    roles = {t.name: t.role for t in desc.tensors}
    keys = set()
    for f in findings:
        line = f.location.line if f.location is not None else None
        if f.kind in ("oob_load", "oob_store"):
            keys.add(("bounds", line))
        elif f.kind == "poison" and roles.get(f.tensor) == "scratch":
            keys.add(("read", line))
        elif f.kind in ("race", "rw_race"):
            keys.add(("race-tensor", f.tensor))
        elif f.kind == "unwritten":
            keys.add(("exists", f.tensor))
        elif f.kind == "barrier":
            keys.add(("barrier", line))
        else:
            keys.add((f.kind, line))
    return keys


def _inputs(kern, desc, sizes, idx, shapes):
    rng = np.random.default_rng(0)
    out = {}
    for name in kern.inputs:
        if name == "idx":
            out[name] = np.asarray(idx, np.int32).reshape(shapes[name])
        else:
            out[name] = rng.standard_normal(shapes[name]).astype(np.float32)
    return out


def cross_check(kern, desc, keyed, runs, rep, limit, bad_at) -> None:
    from ..verify.numeric import NumericUnsupported, execute
    from ._oracle import shapes_at

    bad_keys = set(bad_at)
    order = sorted(
        range(len(runs)),
        key=lambda k: (
            0 if any((runs[k][0], runs[k][1]) in bad_at.get(key, []) for key in bad_keys) else 1,
            k,
        ),
    )
    if limit is not True:
        order = order[: int(limit)]
    stores = {}
    for o, k in keyed:
        if k is not None and k[0] == "race":
            stores.setdefault(k[1], []).append(o)
    for k in order:
        sizes, idx, out = runs[k]
        shapes = shapes_at(desc, sizes)
        try:
            _, flags = execute(kern, sizes, _inputs(kern, desc, sizes, idx, shapes))
            found = flags.findings()
        except NumericUnsupported:  # a documented limit of the executor (a barrier in a branch)
            return
        except Exception as e:
            rep.problems.append(
                Problem("error", None, f"executor: {type(e).__name__}: {e}", sizes, idx)
            )
            continue
        keys = flag_keys(found, desc)
        for o, key in keyed:
            if key is None or o.status != "proved":
                continue
            hit = key in keys
            if key[0] == "race":
                tensor = _tensor_at(rep.source, key[1])
                hit = ("race-tensor", tensor) in keys and all(
                    x.status == "proved" for x in keyed_race(keyed, rep.source, tensor)
                )
            if hit and (not out.tainted or key[0] == "bounds"):
                rep.problems.append(
                    Problem(
                        "unsound",
                        key,
                        f"{o.kind} proved ({o.message}) but the executor flags it",
                        sizes,
                        idx,
                    )
                )
        if out.tainted:
            continue
        for key in {k for k in keys | set(out.bad) if k[0] in ("bounds", "exists")}:
            if (key in keys) != bool(out.bad.get(key)):
                rep.problems.append(
                    Problem(
                        "disagreement",
                        key,
                        f"executor {'flags' if key in keys else 'misses'}"
                        f" it, the oracle {'does not' if key in keys else 'does'}",
                        sizes,
                        idx,
                    )
                )


def _tensor_at(source: str, line: int) -> str | None:
    text = source.splitlines()[line - 1]
    for name in ("y", "s", "x"):
        if f"tp.store({name}," in text or f"tp.load({name}," in text:
            return name
    return None


def keyed_race(keyed, source, tensor):
    return [
        o
        for o, k in keyed
        if k is not None and k[0] == "race" and _tensor_at(source, k[1]) == tensor
    ]
