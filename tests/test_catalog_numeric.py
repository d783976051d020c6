"""Numeric confirmation of the catalog: correct specs match values and gradients; every defect
that is observable numerically shows up at the static counterexample's sizes (issue 6).

Slow-ish (each size compiles the tiled executor), so each run uses the smallest budget that
still reaches the defect: the counterexample's sizes first, then the boundary points.
"""

import pytest

from tileproof import catalog
from tileproof.catalog import bugs
from tileproof.verify import verify_kernel
from tileproof.verify.numeric import check_numeric

# variant -> fragment the numeric message must contain
OBSERVABLE = {
    "fused_decode_empty_seq": "poisoned read",
    "fused_decode_odd_split": "is never written",
    "mesh_ring_short": "the reference gives",
    "mesh_ring_gated_partner": "does not receive",
    "mesh_ring_stale_backward": "gradient",
    "compressor_floor_div": "poisoned read",
    "compressor_cache_row": "out-of-bounds store",
    "paged_pair_contiguous": "out-of-bounds load",
    "paged_heads_tail": "out-of-bounds",
    "paged_unmasked_partial": "the reference gives",
    "decode_unmasked_prefetch": "out-of-bounds load of page_table",
    "decode_zero_splits": "NaN",
    "decode_split_k_floor_pages": "NaN",
}
# Not observable numerically, by nature: int32 offsets overflow only at sizes far beyond any
# numeric run; a wave launch hangs hardware but computes the same numbers.
STATIC_ONLY = {"decode_offsets_int32", "fused_decode_kv_offset_int32", "fused_decode_wave_launch"}


def test_every_variant_is_classified():
    assert {v.name for v in bugs.VARIANTS} == set(OBSERVABLE) | STATIC_ONLY


@pytest.mark.parametrize(
    "variant", [v for v in bugs.VARIANTS if v.name in OBSERVABLE], ids=lambda k: k.name
)
def test_defect_confirmed_at_the_counterexample(variant):
    rep = verify_kernel(variant)
    ces = [o.counterexample for o in rep.obligations if o.status == "violated" and o.counterexample]
    result = check_numeric(variant, extra_sizes=ces[:1], budget=2)
    assert result.status == "mismatch", result
    assert OBSERVABLE[variant.name] in result.message
    if ces:  # the first size tried is the counterexample's (restricted to sizes)
        sizes = {k: v for k, v in ces[0].items() if k in variant.sizes}
        assert sizes.items() <= result.sizes[0].items()


@pytest.mark.parametrize("kernel", catalog.KERNELS, ids=lambda k: k.name)
def test_correct_spec_matches_values_and_gradients(kernel):
    result = check_numeric(kernel, budget=1)
    assert result.status == "matched", result.message
    assert result.gradients is not None and result.gradients["status"] == "matched"
    assert result.max_abs_err is not None
