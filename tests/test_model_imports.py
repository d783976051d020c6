"""``tileproof.model`` is the pipeline's middle: it must import, walk and run a model without
JAX and z3 (and ``tileproof.show`` with it), so that tools reading models need neither."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_BLOCKED = textwrap.dedent("""
    import sys

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("jax", "jaxlib", "z3"):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, _Block())
""")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_blocker_blocks():
    """The check below means something: with the finder installed, jax cannot load."""
    r = _run("import jax\n")
    assert r.returncode != 0 and "blocked" in r.stderr


def test_model_and_show_import_and_run_without_jax_and_z3():
    r = _run("""
        import sys
        from tileproof import model as M
        from tileproof import shapes as S
        from tileproof import show  # pictures sit on the model alone
        from tileproof.model._nodes import Access, Dim, Loop

        acc = Access("store", "y", (Dim(S.sym("p") * 4, 4),), None, None)
        loop = Loop("i", S.as_expr(0), S.sym("N"), [acc], None)
        assert [type(n).__name__ for n in M.walk([loop])] == ["Loop", "Access"]
        assert loop.children() == [acc] and acc.children() == []
        model = M.Model("k", "k.py", ["N"], [], [("p", S.sym("N"))], {}, [loop])
        evs = M.events(model, {"N": 3})  # the concrete interpreter needs numpy only
        assert [(e.program, e.env["i"]) for e in evs][:3] == [((0,), 0), ((0,), 1), ((0,), 2)]
        assert sorted(M.touched(evs[-1].node, evs[-1].env)) == [(8,), (9,), (10,), (11,)]
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "z3"))
        assert not loaded, loaded
        assert callable(show.coverage)
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
