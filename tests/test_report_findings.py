"""report/: findings as data — one status vocabulary, stable codes, typed counterexample keys.

Each word that "skipped" used to share has its own case here, with a twin that stays
proved; the JSON contract keeps its old words beside the new ones.
"""

import json
import pickle
import re
from pathlib import Path

import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.project import ProofCache
from tileproof.report import (
    CODES,
    FINDING_KINDS,
    KINDS,
    CexKey,
    Finding,
    Report,
    Status,
    to_sarif,
    to_text,
)
from tileproof.report._status import legacy
from tileproof.verify import verify_kernel

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ duplicate (was "skipped")


def _shared_divisor(lowest_m: int):
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 16", f"M >= {lowest_m}", "M <= 8"],
        tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    )
    def shared_divisor(x, y):
        p, m = tp.program_id(0), tp.size("M")
        t = tp.load(x, (p,), mask=p // m < tp.size("N"))  # M divides here and in the mask
        tp.store(y, (p,), t)

    return shared_divisor


def test_a_zero_divisor_is_reported_once_and_its_other_sites_are_duplicates():
    rep = verify_kernel(_shared_divisor(0))
    shape = [o for o in rep.obligations if o.kind == "shape" and "divi" in o.message]
    assert [o.status for o in shape].count(Status.VIOLATED) == 1, shape
    dups = [o for o in shape if o.status == Status.DUPLICATE]
    assert dups and all("already reported at" in o.reason for o in dups)
    assert not rep.ok  # the original fails the kernel; its duplicates add nothing
    js = [o for o in rep.to_json()["obligations"] if o.get("outcome") == "duplicate"]
    assert js and all(o["status"] == "skipped" and o["code"] == "TP101" for o in js)
    text = to_text(Report([rep]))
    assert "shape: duplicate" in text and "shape: skipped" not in text
    summary = Report([rep]).summary()  # the contract's count, and the precise one
    assert summary["obligations"]["skipped"] == len(dups)
    assert summary["outcomes"]["obligations"]["duplicate"] == len(dups)


def test_the_twin_whose_divisor_is_at_least_one_is_proved_without_duplicates():
    rep = verify_kernel(_shared_divisor(1))
    assert rep.ok and all(o.status == Status.PROVED for o in rep.obligations), [
        (o.kind, o.status, o.message) for o in rep.obligations if o.status != "proved"
    ]


# ---------------------------------------------- skipped (asked for) and not_run (--static)


def _rows(**numeric):
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 8"],
        reference=lambda x: {"y": x},
        tensors=dict(x=tp.Input(("N",), dtype="int32"), y=tp.Output(("N",), dtype="int32")),
        numeric=numeric,
    )
    def rows(x, y):
        p = tp.program_id(0)
        tp.store(y, (p,), tp.load(x, (p,)))

    return rows


def test_a_static_run_reports_numerics_as_not_run_and_a_requested_skip_as_skipped():
    static = verify_kernel(_rows()).to_json()["numeric"]
    assert static["status"] == "skipped" and static["outcome"] == "not_run"
    assert static["code"] == "TP201"
    asked = verify_kernel(_rows(skip="compared on the device"), numeric=True)
    assert asked.ok and asked.numeric.status == Status.SKIPPED
    assert asked.to_json()["numeric"]["outcome"] == "skipped"
    summary = Report([asked]).summary()
    assert summary["numeric"]["skipped"] == 1 and summary["outcomes"]["numeric"]["skipped"] == 1


def test_gradients_of_an_integer_kernel_are_not_applicable_not_skipped():
    rep = verify_kernel(_rows(budget=0, sizes=[{"N": 2}]), numeric=True)
    assert rep.numeric.status == Status.MATCHED, rep.numeric.message
    grads = rep.to_json()["numeric"]["gradients"]
    assert grads["status"] == "skipped" and grads["outcome"] == "not_applicable"


def test_the_vocabulary_maps_onto_the_json_words():
    assert [legacy(s) for s in Status] == [
        "proved",
        "violated",
        "unknown",
        "matched",
        "mismatch",
        "error",
        "skipped",
        "skipped",
        "skipped",
        "skipped",
    ]
    assert Status("duplicate") == "duplicate" and json.dumps(Status.NOT_RUN) == '"not_run"'
    with pytest.raises(ValueError):
        Finding("bounds", "skiped", "a typo'd status is refused")


# ------------------------------------------------------------------------------- codes


def test_every_kind_has_one_stable_code_and_the_contract_lists_them_all():
    assert set(CODES) == set(FINDING_KINDS) and len(set(CODES.values())) == len(CODES)
    assert all(re.fullmatch(r"TP\d{3}", c) for c in CODES.values())
    doc = (ROOT / "docs" / "contracts.md").read_text()
    listed = dict(re.findall(r"^\| `(TP\d{3})` \| `(\w+)` \|", doc, re.M))
    assert listed == {c: k for k, c in CODES.items()}


def test_text_findings_end_with_their_code_and_sarif_has_one_rule_per_code():
    rep = verify_kernel(_shared_divisor(0))
    findings = [
        line for line in to_text(Report([rep])).splitlines() if re.match(r"\S+:\d+: \w+: ", line)
    ]
    assert findings and all(
        re.search(r"\(in kernel shared_divisor\)  \[TP\d{3}\]$", f) for f in findings
    )
    run = to_sarif(Report([rep]))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["properties"]["code"] for r in rules] == [CODES[k] for k in FINDING_KINDS]
    assert all(r["properties"]["code"] == CODES[r["ruleId"].split("/")[1]] for r in run["results"])


def test_a_report_reads_as_findings_including_numeric_and_kernel_errors():
    rep = verify_kernel(_rows(skip="later"), numeric=True)
    kinds = [f.kind for f in rep.findings()]
    assert kinds[-1] == "numeric" and set(kinds[:-1]) <= set(KINDS)
    assert rep.findings()[-1].code == "TP201"


# ---------------------------------------------------------------------- typed keys


def _race(guard: str):
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 64"],
        tensors=dict(x=tp.Input(("N", 4)), y=tp.Output(("N", 4))),
    )
    def racy(x, y):
        p = tp.program_id(0)
        row = p // 2 if guard == "half" else p  # two programs write each row: a race
        tp.store(y, (row, tp.ds(0, 4)), tp.load(x, (p, tp.ds(0, 4))))

    return racy


def test_counterexample_keys_are_typed_and_print_as_before():
    rep = verify_kernel(_race("half"))
    race = next(o for o in rep.obligations if o.kind == "race" and o.status == "violated")
    keys = {str(k): k for k in race.counterexample}
    assert isinstance(next(iter(race.counterexample)), CexKey)
    assert keys["N"].role == "size"
    assert keys["p"].role == "program" and keys["p"].instance == 1
    assert keys["p'"].role == "program" and keys["p'"].instance == 2 and keys["p'"].name == "p"
    assert keys["element[0]"].role == "element" and keys["element[0]"].at == (0,)
    assert race.counterexample["p'"] == race.counterexample[keys["p'"]]  # looked up by text
    js = next(
        o for o in rep.to_json()["obligations"] if o["kind"] == "race" and o["status"] == "violated"
    )
    assert set(js["counterexample"]) == set(keys)  # the contract's object: unchanged keys
    typed = {k["key"]: k for k in js["counterexample_keys"]}
    assert typed["p'"] == {
        "key": "p'",
        "role": "program",
        "name": "p",
        "instance": 2,
        "value": race.counterexample["p'"],
    }
    # pickles (worker processes) and survives the proof cache's JSON with its role
    again = pickle.loads(pickle.dumps(race))
    assert {str(k): k.role for k in again.counterexample} == {s: k.role for s, k in keys.items()}


def test_the_twin_without_a_race_is_proved():
    rep = verify_kernel(_race("row"))
    assert rep.ok, [(o.kind, o.message) for o in rep.obligations if o.status != "proved"]


def test_keys_from_the_proof_cache_are_typed_again(tmp_path):
    cache = ProofCache(tmp_path, enabled=True)
    first = verify_kernel(_race("half"), cache=cache)
    second = verify_kernel(_race("half"), cache=cache)
    assert second.cached and not first.cached

    def roles(rep):
        return [
            sorted((str(k), k.role) for k in o.counterexample)
            for o in rep.obligations
            if o.counterexample
        ]

    assert roles(first) == roles(second) and roles(first)


@pytest.mark.parametrize(
    "key, text, role, name, index, instance",
    [
        (CexKey.element(1), "element[1]", "element", "", (1,), 1),
        (CexKey.cell("start_pos", (0,)), "start_pos[0]", "data", "start_pos", (0,), 1),
        (CexKey.cell("T", (1, 2)), "T[1, 2]", "data", "T", (1, 2), 1),
        (CexKey.cell("T", ()), "T[]", "data", "T[]", (), 1),  # a 0-d tensor's value
        (CexKey.iteration("i_29"), "iteration[i_29]", "iteration", "i_29", (), 1),
        (CexKey("program", "b").primed(1), "b'", "program", "b", (), 2),
        (CexKey("loop", "i_178"), "i_178", "loop", "i_178", (), 1),
        (CexKey.quantity("offset"), "offset", "value", "offset", (), 1),
    ],
)
def test_key_display_is_derived_from_its_fields(key, text, role, name, index, instance):
    assert (str(key), key.role, key.name, key.at, key.instance) == (
        text,
        role,
        name,
        index,
        instance,
    )
    for again in (CexKey.from_json(key.to_json()), pickle.loads(pickle.dumps(key))):
        assert type(again) is CexKey and again == key
        assert (again.role, again.name, again.at, again.instance) == (role, name, index, instance)


@pytest.mark.parametrize(
    "role, name, at, instance",
    [
        ("element", "x", (0,), 1),  # an element has no name
        ("element", "", (0, 1), 1),  # and one axis
        ("size", "", (), 1),  # a size needs its name
        ("iteration", "i", (0,), 1),
        ("data", "T", (0,), 2),  # a cell has no second instance
        ("bogus", "n", (), 1),
    ],
)
def test_key_fields_that_spell_no_key_are_refused(role, name, at, instance):
    with pytest.raises(ValueError):
        CexKey(role, name, at, instance)


def test_a_plain_text_key_is_refused():
    """A key's role is stated where the value is found, never guessed from its text."""
    with pytest.raises(TypeError, match="plain text"):
        Finding("bounds", "violated", "m", counterexample={"N": 1})
    f = Finding("bounds", "violated", "m", counterexample={CexKey("size", "N"): 1})
    with pytest.raises(TypeError, match="plain text"):
        f.counterexample = {"element[0]": 4}
    with pytest.raises(ValueError):  # the proof cache's JSON must read back as it was written
        CexKey.from_json({"key": "N'", "role": "size", "name": "N"})


def _split_named(size: str, rows: int):
    """A lane split of ``rows`` rows; the grid extent is a size called ``size``."""

    @tp.kernel(
        grid={"p": size},
        assume=[f"{size} <= 64"],
        tensors=dict(x=tp.Input((f"{size}*16", 128)), y=tp.Output((f"{size}*16", 128))),
    )
    def split_named(x, y):
        p = tp.program_id(0)
        t = tp.load(x, (tp.ds(p * 16, rows), slice(None)))
        with tp.lanes(2, halve=0) as lane:
            part = tp.lane_part(t, axis=0)
            half = rows // 2
            tp.store(y, (tp.ds(p * 16 + lane * half, half), slice(None)), part)

    return split_named


@pytest.mark.parametrize("size", ["lanes", "extent", "P"])
def test_a_quantity_named_like_a_size_is_no_size(size):
    """The split finding names the lane count ``lanes`` and the tile ``extent``: values it
    computed, whatever the kernel's sizes are called (typing keys by looking their text up
    in the model called them sizes when a size had that name)."""
    rep = verify_kernel(_split_named(size, 5))
    bad = [o for o in rep.obligations if o.kind == "split" and o.status == "violated"]
    assert bad, [(o.kind, o.status) for o in rep.obligations]
    roles = {str(k): k.role for k in bad[0].counterexample}
    assert roles == {"extent": "value", "lanes": "value", "axis": "value"}, roles


def test_the_even_split_with_a_size_called_lanes_is_proved():
    rep = verify_kernel(_split_named("lanes", 16))
    assert rep.ok, [(o.kind, o.message) for o in rep.obligations if o.status != "proved"]


def _big_rows(size: str, cap: int):
    """Tiles of 4096 elements, ``size`` programs: the element offset passes int32 unless
    ``size <= cap`` keeps it small."""

    @tp.kernel(
        grid={"p": size},
        assume=[f"{size} <= {cap}"],
        tensors=dict(x=tp.Input((f"{size} * 4096",)), y=tp.Output((f"{size} * 4096",))),
    )
    def rows(x, y):
        p = tp.program_id(0)
        tp.store(y, (tp.ds(p * 4096, 4096),), tp.load(x, (tp.ds(p * 4096, 4096),)))

    return rows


@pytest.mark.parametrize("size", ["offset", "N"])
def test_a_quantity_never_overwrites_a_size_of_its_name(size):
    """The overflow finding names the ``offset`` it computed; with a size called ``offset``
    the counterexample showed that offset as the size's value (not re-checkable: the grid
    has ``offset`` programs and ``p`` must stay below it).  The size keeps its value, and
    the offset is in the message."""
    rep = verify_kernel(_big_rows(size, 1 << 20))
    bad = [
        o
        for o in rep.obligations
        if o.kind == "overflow" and o.status == "violated" and "element offset" in o.message
    ]
    assert bad, [(o.kind, o.status, o.message) for o in rep.obligations]
    for o in bad:
        cx = o.counterexample
        keys = {str(k): k for k in cx}
        assert keys[size].role == "size" and 0 <= cx["p"] < cx[size] <= 1 << 20, cx
        assert f"{size}={cx[size]}" in o.message
        if size != "offset":  # no clash: the offset is shown beside the sizes
            assert keys["offset"].role == "value" and f"{cx['offset']:,}" in o.message


def test_the_small_twin_with_a_size_called_offset_is_proved():
    rep = verify_kernel(_big_rows("offset", 1024))
    assert rep.ok, [(o.kind, o.message) for o in rep.obligations if o.status != "proved"]


def _looped_barrier(trips_depend_on_program: bool):
    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 64"],
        tensors=dict(x=tp.Input(("P", 8)), y=tp.Output(("P", 8))),
        launch=tp.Launch(cores=64, start="together"),
    )
    def looped_barrier(x, y):
        p = tp.program_id(0)

        def body(i, acc):
            tp.barrier("grid")
            return acc

        lax.fori_loop(0, p + 1 if trips_depend_on_program else 3, body, 0)
        tp.store(y, (p, tp.ds(0, 8)), tp.load(x, (p, tp.ds(0, 8))))

    return looped_barrier


def _check_roles(kernel) -> set[str]:
    """Every counterexample key of ``kernel``'s findings is a CexKey whose role fits what
    its name is in the lowered model; returns the roles seen."""
    from tileproof.lowering import lower
    from tileproof.model import Lanes, Loop

    model = lower(kernel)
    loops = {n.var: n for n in model.walk() if isinstance(n, Loop)}
    lanes = {n.var for n in model.walk() if isinstance(n, Lanes)}
    carried = {c for lp in loops.values() for c in lp.carried}
    known = {
        *model.sizes,
        *(g for g, _ in model.grid),
        *loops,
        *lanes,
        *model.data,
        *carried,
        *(model.ranks[:1] if model.ranks else ()),
    }
    seen = set()
    for o in verify_kernel(kernel).obligations:
        for k in o.counterexample or {}:
            assert type(k) is CexKey, (o.message, k)
            seen.add(k.role)
            ok = {
                "size": k.name in model.sizes,
                "program": k.name in dict(model.grid),
                "rank": model.ranks is not None and k.name == model.ranks[0],
                "lane": k.name in lanes,
                "loop": k.name in loops,
                "iteration": k.name in loops and k.instance == 1,
                "element": len(k.at) == 1 and k.instance == 1,
                "data": (k.name in model.tensors and len(k.at) > 0)
                if k.at
                else (
                    k.name in model.data
                    or k.name in carried
                    or k.name.removesuffix("_carried") in model.data
                ),
                "value": k.name not in known,
            }[k.role]
            assert ok, (o.kind, o.message, k, k.role)
    return seen


@pytest.mark.parametrize(
    "name, roles",
    [
        (
            "fused_decode_kv_offset_int32",
            {"size", "program", "lane", "loop", "data", "value", "element"},
        ),
        ("fused_decode_empty_seq", {"size", "data", "element"}),  # data at an index: seq_lens[0]
        ("mesh_ring_short", {"size", "rank", "value"}),
    ],
)
def test_catalog_keys_have_the_role_of_their_name(name, roles):
    from tileproof.catalog import bugs

    variant = next(v for v in bugs.VARIANTS if v.name == name)
    assert _check_roles(variant) >= roles


def test_pair_and_iteration_keys_have_their_roles():
    assert _check_roles(_looped_barrier(True)) >= {"size", "program", "iteration"}
    assert _check_roles(_race("half")) >= {"size", "program", "element"}


def test_the_looped_barrier_twin_is_proved():
    rep = verify_kernel(_looped_barrier(False))
    assert rep.ok, [(o.kind, o.message) for o in rep.obligations if o.status != "proved"]


# ------------------------------------------------------------------ no JAX, no z3


def test_findings_build_and_render_without_jax_and_z3():
    """Tools that read or render findings need neither JAX nor z3 (nor a spec)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import json, sys

        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("jax", "jaxlib", "z3"):
                    raise ImportError(f"{name} is blocked in this test")

        sys.meta_path.insert(0, _Block())
        from tileproof._location import Location
        from tileproof.report import Finding, KernelReport, Report, to_sarif, to_text

        from tileproof.report import CexKey
        f = Finding("bounds", "violated", "past the end", Location("k.py", 7),
                    {CexKey("size", "N"): 1, CexKey.element(0): 4})
        rep = Report([KernelReport("k", "k.py:3", [f])])
        print(to_text(rep, quiet=True))
        json.dumps(rep.to_json()), json.dumps(to_sarif(rep))
        assert not [m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "z3")]
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "k.py:7: bounds: past the end (in kernel k)  [TP102]"
