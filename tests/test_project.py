"""The run layer (`tileproof.project`): one runner with the settings' caches for every front door."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_cli import BUGGY, FIXED, write

from tileproof import project
from tileproof.project import _workers


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TILEPROOF_CACHE_DIR", raising=False)
    return tmp_path


def _kernel(repo, text=FIXED, name="scale_spec.py"):
    write(repo / name, text)
    (k,) = project.collect([name])
    return k


def test_run_kernel_proves_once_then_answers_from_the_settings_cache(repo):
    k = _kernel(repo)
    cfg = project.load_config()
    first = project.run_kernel(k, cfg, numeric=False)
    again = project.run_kernel(k, cfg, numeric=False)
    assert first.ok and not first.cached
    assert again.cached and [o.status for o in again.obligations] == [
        o.status for o in first.obligations
    ]
    assert (repo / project.CACHE_DIR).is_dir()


def test_run_kernel_with_the_cache_off_writes_nothing_and_never_hits(repo):
    k = _kernel(repo)
    cfg = replace(project.load_config(), cache=False)
    reps = [project.run_kernel(k, cfg, numeric=False) for _ in range(2)]
    assert not any(r.cached for r in reps)
    assert not (repo / project.CACHE_DIR).exists()


def test_cached_only_answers_nothing_it_has_not_proved(repo):
    k = _kernel(repo, BUGGY)
    cfg = project.load_config()
    assert project.run_kernel(k, cfg, numeric=False, cached_only=True) is None
    rep = project.run_kernel(k, cfg, numeric=False)
    assert not rep.ok and any(o.status == "violated" for o in rep.obligations)
    hit = project.run_kernel(k, cfg, numeric=False, cached_only=True)
    assert hit is not None and hit.cached and not hit.ok  # a violation is remembered as one


def test_settings_reach_the_verifier_through_the_runner(repo):
    write(repo / "pyproject.toml", '[tool.tileproof]\n[tool.tileproof.skip]\nrace = "r"\n')
    k = _kernel(repo)
    rep = project.run_kernel(k, project.load_config(), numeric=False)
    race = [o for o in rep.obligations if o.kind == "race"]
    assert [(o.status, o.reason) for o in race] == [("skipped", "r")]


def test_find_kernels_refs_load_the_same_kernel_again(repo):
    write(repo / "specs" / "a_spec.py", FIXED)
    write(repo / "specs" / "notes.py", "x = 1\n")
    skipped: list = []
    found = project.find_kernels(["specs"], skipped=skipped)
    assert [ref.name for ref, _ in found] == ["scale"]
    assert any(p.endswith("notes.py") for p, _ in skipped)
    ref, kernel = found[0]
    assert _workers._load(ref).name == kernel.name  # what a worker process does


@pytest.mark.parametrize(
    "requested, configured, static, cpu, expected",
    [
        (3, 1, False, True, 3),  # --jobs wins
        (None, 2, False, True, 2),  # then [tool.tileproof] jobs
        (None, 1, True, True, 1),  # static runs stay in one process
    ],
)
def test_choose_jobs(monkeypatch, requested, configured, static, cpu, expected):
    monkeypatch.setattr(_workers, "_cpu_backend", lambda: cpu)
    cfg = project.Config(jobs=configured)
    assert _workers.choose_jobs(requested, cfg, static=static) == expected


def test_numeric_runs_on_a_cpu_use_up_to_four_processes(monkeypatch):
    monkeypatch.setattr(_workers, "_cpu_backend", lambda: True)
    monkeypatch.setattr(_workers.os, "cpu_count", lambda: 16)
    assert _workers.choose_jobs(None, project.Config(), static=False) == 4
    monkeypatch.setattr(_workers.os, "cpu_count", lambda: 2)
    assert _workers.choose_jobs(None, project.Config(), static=False) == 2


@pytest.mark.parametrize("cores, expected", [(16, 8), (64, 8), (6, 3), (1, 1)])
def test_numeric_runs_on_an_accelerator_share_it(monkeypatch, cores, expected):
    # host-bound compiles: one process per two host cores, at most eight
    monkeypatch.setattr(_workers, "_cpu_backend", lambda: False)
    monkeypatch.setattr(_workers.os, "cpu_count", lambda: cores)
    assert _workers.choose_jobs(None, project.Config(), static=False) == expected
    assert _workers.choose_jobs(None, project.Config(), static=True) == 1
    assert _workers.choose_jobs(1, project.Config(), static=False) == 1


def test_kernels_a_dead_worker_left_run_again_here(repo, monkeypatch):
    # a worker killed (for memory) breaks the pool: what it left unanswered runs again in
    # this process, alone, and passes or fails on its own merits -- never an internal error
    from concurrent import futures
    from concurrent.futures.process import BrokenProcessPool

    class DeadPool:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def submit(self, *a, **k):
            f = futures.Future()
            f.set_exception(BrokenProcessPool("a worker was killed"))
            return f

    monkeypatch.setattr(futures, "ProcessPoolExecutor", DeadPool)
    write(repo / "specs" / "a_spec.py", FIXED)
    write(repo / "specs" / "b_spec.py", FIXED.replace("def scale", "def scale_b"))
    found = project.find_kernels(["specs"])
    assert len(found) == 2
    cfg = replace(project.Config(), cache=False)
    reports, _ = _workers.verify_refs(found, cfg, numeric=False, jobs=2)
    assert [r.error for r in reports] == [None, None]
    assert all(o.status == "proved" for r in reports for o in r.obligations)


def test_a_spec_file_inside_a_package_imports_its_siblings_relatively(repo):
    """``FILE:KERNEL`` and folder targets import a file inside a package under its package's
    name, so ``from . import sibling`` works (the catalog's own files do it); the worker
    process loads the same kernel again."""
    write(repo / "kpkg" / "__init__.py", "")
    write(repo / "kpkg" / "_grids.py", 'GRID = "cdiv(N, 64)"\n')
    text = FIXED.replace(
        "import tileproof.spec as tp\n", "import tileproof.spec as tp\n\nfrom . import _grids\n"
    )
    text = text.replace('grid={"i": "cdiv(N, 64)"}', "grid={'i': _grids.GRID}")
    write(repo / "kpkg" / "scale_spec.py", text)
    for target in ("kpkg/scale_spec.py:scale", "kpkg/scale_spec.py", "kpkg"):
        found = project.find_kernels([target])
        assert [ref.name for ref, _ in found] == ["scale"], target
        ref, kernel = found[0]
        assert _workers._load(ref).name == "scale"
        rep = project.run_kernel(kernel, project.load_config(), numeric=False)
        assert rep.ok and any(o.status == "proved" for o in rep.obligations)
