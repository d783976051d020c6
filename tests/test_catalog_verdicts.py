"""The catalog's verdicts, kernel by kernel and variant by variant (issue 6's 'done means').

Correct specs: every obligation proved.  Defect variants: flagged with the
kind docs/catalog.md names, with a counterexample in the kernel's own terms that
re-evaluates to a violation.
"""

import pytest

from tileproof import catalog
from tileproof.catalog import bugs
from tileproof.verify import verify_kernel

# variant -> (kinds that must be violated, fragments the first such message must contain)
EXPECTED = {
    "fused_decode_odd_split": ({"split"}, ["[5, 128]", "2 lanes"]),
    "fused_decode_wave_launch": ({"barrier"}, ["24", "zero_fill"]),
    "fused_decode_kv_offset_int32": ({"overflow"}, ["k_cache", "int32"]),
    "fused_decode_empty_seq": ({"coverage"}, ["part_o", "never written"]),
    "mesh_ring_short": ({"ring"}, ["never folds"]),
    "mesh_ring_gated_partner": ({"ring"}, ["left early"]),
    "compressor_floor_div": ({"coverage"}, ["kv_proj", "never written"]),
    "compressor_cache_row": ({"bounds"}, ["kv_cache"]),
    "paged_pair_contiguous": ({"bounds"}, ["key_cache"]),
    "paged_heads_tail": ({"bounds", "coverage"}, []),
    "decode_unmasked_prefetch": ({"bounds"}, ["page_table"]),
    "decode_offsets_int32": ({"overflow"}, ["int32"]),
    "decode_zero_splits": ({"shape"}, ["division by zero"]),
    "decode_split_k_floor_pages": ({"reads"}, ["page_table", "never read"]),
}
NUMERIC_ONLY = {"mesh_ring_stale_backward", "paged_unmasked_partial"}


def test_every_variant_is_listed_here():
    assert {v.name for v in bugs.VARIANTS} == set(EXPECTED) | NUMERIC_ONLY


@pytest.mark.parametrize("kernel", catalog.KERNELS, ids=lambda k: k.name)
def test_correct_spec_is_proved_completely(kernel):
    rep = verify_kernel(kernel)
    assert rep.error is None
    assert rep.obligations, "a spec with no obligations proves nothing"
    bad = [
        f"{o.kind} {o.status}: {o.message} {o.reason}"
        for o in rep.obligations
        if o.status != "proved"
    ]
    assert bad == []
    assert {o.kind for o in rep.obligations} >= {"shape", "bounds", "coverage", "overflow", "race"}


def _substitutes(o) -> bool:
    """The counterexample names the kernel's sizes only with user-visible names (no internals)."""
    return all(not k.startswith("_") and "__" not in k for k in o.counterexample)


@pytest.mark.parametrize(
    "variant", [v for v in bugs.VARIANTS if v.name in EXPECTED], ids=lambda k: k.name
)
def test_variant_is_flagged_with_its_kind(variant):
    kinds, fragments = EXPECTED[variant.name]
    rep = verify_kernel(variant)
    violated = [o for o in rep.obligations if o.status == "violated"]
    assert kinds <= {o.kind for o in violated}
    for o in violated:
        assert o.counterexample and _substitutes(o), o
        assert o.location.line > 0 and o.location.file.endswith(".py")
    # the finding that names the defect (a gated partner also makes folds of poison, listed
    # first, but the cause is the partner that left early)
    named = [o for o in violated if o.kind in kinds and all(f in o.message for f in fragments)]
    assert named, [o.message for o in violated]
    assert not rep.ok


@pytest.mark.parametrize(
    "variant", [v for v in bugs.VARIANTS if v.name in NUMERIC_ONLY], ids=lambda k: k.name
)
def test_numeric_only_defects_pass_the_static_check(variant):
    rep = verify_kernel(variant)
    assert all(o.status == "proved" for o in rep.obligations)
