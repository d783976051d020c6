"""A production-size point the device runs out of memory on is said, not failed or hidden.

On a GPU the numeric run adds the authors' sizes when the device's free memory seems to
admit them (an estimate per element of the largest tensor).  When the device refuses such
a point anyway, the kernel has not failed: the point is reported as not run, with the
reason, and the smaller points decide.  At ordinary sizes an out-of-memory error stays a
failed run (``error``), as every other exception does.
"""

from __future__ import annotations

import tileproof.spec as tp
from tileproof.verify.numeric import _check, check_numeric


@tp.kernel(
    grid={"i": "N"}, tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))), reference=lambda x: x
)
def copy(x, y):
    i = tp.program_id(0)
    tp.store(y, (i,), tp.load(x, (i,)))


def _refuse_at(n_big: int, monkeypatch):
    real = _check._one

    def one(kernel, env, *a, **k):
        if env["N"] == n_big:
            raise RuntimeError(
                "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 85.53GiB"
            )
        return real(kernel, env, *a, **k)

    monkeypatch.setattr(_check, "_one", one)


def test_out_of_memory_beyond_the_cap_is_reported_and_the_rest_runs(monkeypatch):
    _refuse_at(7, monkeypatch)
    monkeypatch.setattr(_check, "CAP_ELEMENTS", 4)  # N=7 is "beyond the CPU cap" here
    r = check_numeric(copy, sizes=[{"N": 7}, {"N": 3}], gradients=False)
    assert r.status == "matched", r.message
    assert "not run at N=7: out of device memory" in r.message
    assert r.detail["out_of_memory"] == [{"N": 7}]
    assert {"N": 7} not in r.sizes and {"N": 3} in r.sizes


def test_out_of_memory_in_a_shared_device_names_jobs_1(monkeypatch):
    # ``tileproof check`` ran kernels in 8 processes on one device: the note says how to
    # give the kernel all of it
    _refuse_at(7, monkeypatch)
    monkeypatch.setattr(_check, "CAP_ELEMENTS", 4)
    monkeypatch.setenv("TILEPROOF_SHARED_DEVICE", "8")
    r = check_numeric(copy, sizes=[{"N": 7}, {"N": 3}], gradients=False)
    assert r.status == "matched", r.message
    assert "8 processes shared the device: --jobs 1 gives this kernel all of it" in r.message
    monkeypatch.setenv("TILEPROOF_SHARED_DEVICE", "1")
    r = check_numeric(copy, sizes=[{"N": 7}, {"N": 3}], gradients=False)
    assert "shared the device" not in r.message


def test_out_of_memory_at_ordinary_sizes_is_an_error(monkeypatch):
    _refuse_at(3, monkeypatch)
    r = check_numeric(copy, sizes=[{"N": 3}, {"N": 2}], gradients=False)
    assert r.status == "error" and "RESOURCE_EXHAUSTED" in r.message


def test_nothing_run_at_all_is_an_error(monkeypatch):
    _refuse_at(7, monkeypatch)
    monkeypatch.setattr(_check, "CAP_ELEMENTS", 4)
    r = check_numeric(copy, sizes=[{"N": 7}], only=True, gradients=False)
    assert r.status == "error" and "out of device memory" in r.message
