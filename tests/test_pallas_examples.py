"""JAX's own Pallas GPU kernels (examples/pallas/jax_gpu.py), unmodified: every obligation proved.

The acceptance of the Pallas front end: each kernel of the installed
``jax.experimental.pallas.ops.gpu`` (forward and, through ``grad=True``, the
``custom_vjp`` backward kernels) is read from its ``pallas_call`` and proved for every
admissible size, with findings located in JAX's kernel files.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

import tileproof as tp
from tileproof.lowering import lower

_PATH = os.path.join(os.path.dirname(__file__), "..", "examples", "pallas", "jax_gpu.py")
_spec = importlib.util.spec_from_file_location("pallas_jax_gpu", _PATH)
EX = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(EX)
NAMES = [k.name for k in EX.KERNELS]


def test_every_gpu_kernel_of_the_file_is_covered():
    for stem in (
        "softmax",
        "layer_norm",
        "layer_norm.grad/2.ln_backward_dw_db",
        "rms_norm",
        "mha",
        "mha.causal",
        "mha.grad/2.mha_backward",
        "mqa",
        "mqa.masked",
        "gqa",
        "paged_attention",
    ):
        assert f"gpu.{stem}" in NAMES


@pytest.mark.parametrize("kernel", EX.KERNELS, ids=NAMES)
def test_jax_gpu_kernel_is_proved(kernel):
    (rep,) = tp.verify.verify(kernel).kernels
    assert rep.error is None, rep.error
    bad = [(o.kind, o.status, o.message) for o in rep.obligations if o.status != "proved"]
    assert not bad, bad
    assert not lower(kernel).unsupported
    # findings would point into JAX's own kernel files
    assert os.sep + "pallas" + os.sep + "ops" + os.sep + "gpu" + os.sep in kernel.location.file


def test_vmapped_batch_is_an_extra_grid_axis_and_masks_come_from_the_kernel():
    m = lower(EX.mqa_gpu)
    assert [str(e) for _, e in m.grid] == ["B", "(H + 15) // 16", "16"]
    text = m.listing()
    assert "mask _c0 < H - 16*pid1" in text  # the head tail of block_h=16 is masked


def test_paged_attention_reads_pages_through_the_table_with_its_declared_range():
    m = lower(EX.paged_attention_gpu)
    data = {d.tensor for d in m.data.values()}
    assert "block_tables_ref" in data and "lengths_ref" in data
    assert "k_pages_ref[pid1, ds(block_tables_ref_" in m.listing()


def test_paged_attention_needs_every_table_entry_to_be_a_page_even_past_the_length():
    # the last compute block gathers all 8 of its table entries, also those past the
    # sequence's length: a table padded with -1 (as serving stacks do) reads page -1
    padded = tp.pallas(
        EX.paged_attention.paged_attention,
        args=EX._paged_args(f"-1 <= v < {EX._PAGES}"),
        assume=["B <= 256", "G <= 16"],
        name="padded",
    )
    (rep,) = tp.verify.verify(padded).kernels
    viol = [o for o in rep.obligations if o.kind == "bounds" and o.status == "violated"]
    assert viol and all("paged_attention.py" in o.location.file for o in viol)
    assert all(-1 in o.counterexample.values() for o in viol)


@pytest.mark.parametrize(
    "kernel",
    [k for k in EX.KERNELS if ".grad/" in k.name],
    ids=[k.name for k in EX.KERNELS if ".grad/" in k.name],
)
def test_lazily_traced_backward_kernels_keep_kernel_lines(kernel):
    # JAX traces custom_vjp backward kernels lazily (their equations only know the call
    # site); every node still names a line of the kernel's file, so no integer arithmetic
    # goes unchecked for want of a site (the overflow check needs one)
    from tileproof.model import Arith

    m = lower(kernel)
    nodes = list(m.walk())
    assert nodes and any(isinstance(n, Arith) for n in nodes)
    for n in nodes:
        assert n.loc.line > 0 and n.loc.file == kernel.location.file, (n, n.loc)
