"""The `compressor_pool`, `paged_attention` and `decode_split_k` catalog specs lower completely,
to the model docs/catalog.md §3-5 describe, and each defect variant differs from its correct spec
only at the defect (compared on the listing, which is what the verifier reads)."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest
from specs.listings import changed, listing

from tileproof.catalog import compressor_pool as CP
from tileproof.catalog import decode_split_k as DS
from tileproof.catalog import paged_attention as PA
from tileproof.catalog.bugs import _compressor_pool as CPB
from tileproof.catalog.bugs import _decode_split_k as DSB
from tileproof.catalog.bugs import _paged_attention as PAB
from tileproof.lowering import lower
from tileproof.model import Loop

ALL = [*CP.SPECS, *PA.SPECS, *DS.SPECS, *CPB.VARIANTS, *PAB.VARIANTS, *DSB.VARIANTS]


def body(kernel) -> str:
    """The body listing without its line-number column (nesting kept)."""
    lines = listing(kernel).split("  body\n", 1)[1].splitlines()
    return "\n".join(ln[len("  L1234 ") :] for ln in lines)


@pytest.mark.parametrize("kernel", ALL, ids=lambda k: k.name)
def test_lowers_completely(kernel):
    assert lower(kernel).unsupported == []


def test_variant_names_are_the_catalog_names():
    assert [k.name for k in CPB.VARIANTS] == ["compressor_floor_div", "compressor_cache_row"]
    assert [k.name for k in PAB.VARIANTS] == [
        "paged_pair_contiguous",
        "paged_heads_tail",
        "paged_unmasked_partial",
    ]
    assert [k.name for k in DSB.VARIANTS] == [
        "decode_unmasked_prefetch",
        "decode_offsets_int32",
        "decode_zero_splits",
        "decode_split_k_floor_pages",
    ]
    assert [k.name for k in (*CP.SPECS, *PA.SPECS, *DS.SPECS)] == [
        "compressor_pool",
        "paged_attention",
        "decode_split_k",
    ]


def _adapter_outputs(kernel, sizes, rng):
    """Run the reference adapter on small inputs of the declared shapes."""
    args = []
    for name in kernel.inputs:
        t = kernel.tensors[name]
        shape = tuple(d.evaluate(sizes) for d in t.shape)
        if t.is_index:
            args.append(jnp.asarray(sizes.get(f"_{name}", np.zeros(shape)), jnp.int32))
        else:
            args.append(
                jnp.asarray(rng.standard_normal(shape), jnp.float32).astype(
                    jnp.bfloat16 if t.dtype == "bfloat16" else t.dtype
                )
            )
    return args, kernel.reference(*args)


@pytest.mark.parametrize(
    "kernel, sizes",
    [
        (CP.compressor_pool, dict(B=16, S=2, DM=512, _start_pos=[127])),
        (PA.paged_attention, dict(B=2, H=16, P=3, M=2, _context_lens=[200, 5])),
        (
            DS.decode_split_k,
            dict(B=2, Hkv=2, GS=2, NP=3, M=2, MAXLEN=100, NS=2, _cache_seqlens=[100, 7]),
        ),
    ],
    ids=lambda x: getattr(x, "name", ""),
)
def test_reference_adapter_matches_declared_outputs(kernel, sizes):
    _args, out = _adapter_outputs(kernel, sizes, np.random.default_rng(0))
    assert sorted(out) == sorted(kernel.outputs)
    for name, value in out.items():
        t = kernel.tensors[name]
        assert value.shape == tuple(d.evaluate(sizes) for d in t.shape), name
        assert bool(jnp.all(jnp.isfinite(value.astype(jnp.float32)))), name


# ------------------------------------------------------------------ paged_attention


def test_paged_attention_tiers_and_index_formulas():
    text = listing(PA.paged_attention)
    assert "grid    b < B, q < cdiv(H, 16)" in text
    assert "domain  B <= 256; H <= 128; H % 16 == 0; P <= 1048576; M <= 1024" in text
    assert re.search(r"key_cache +input +bfloat16\[128\*P, 128\]  index int64", text)
    assert re.search(r"block_table +input +int32\[B\*M\]  values 0 <= v and v < P", text)
    b = body(PA.paged_attention)
    # query tile of 16 heads: rows b*H + q*16
    assert "load  query[ds(H*b + 16*q, 16), ds(0, 128)]" in b
    # x2 tier: pairs up to end2 = (n_pages // 2) * 2, both pages through the table
    assert re.search(r"for (i_\d+) in \[0, \(\(context_lens_\d+ \+ 127\) // 128\) // 2\):", b)
    assert re.search(r"load  block_table\[M\*b \+ 2\*i_\d+\]  -> block_table_\d+", b)
    assert re.search(r"load  block_table\[M\*b \+ 2\*i_\d+ \+ 1\]  -> block_table_\d+", b)
    assert (
        len(re.findall(r"load  key_cache\[ds\(128\*block_table_\d+, 128\), ds\(0, 128\)\]", b)) == 3
    )
    # x1 tier: the tail page from end2
    assert re.search(
        r"for i_\d+ in \[2\*\(\(\(context_lens_\d+ \+ 127\) // 128\) // 2\), "
        r"\(context_lens_\d+ \+ 127\) // 128\):",
        b,
    )
    assert b.splitlines()[-1] == "store out[ds(H*b + 16*q, 16), ds(0, 128)]"
    assert b.count("store") == 1  # output rows written once per (b, q)


def test_paged_pair_contiguous_differs_only_in_the_pair_reads():
    gone, new = changed(PA.paged_attention, PAB.paged_pair_contiguous)
    # the second table read and the four 128-row page reads of the pair ...
    assert len(gone) == 5
    assert sum("_cache[ds(128*block_table_" in g and ", 128), ds(0, 128)]" in g for g in gone) == 4
    assert any("load  block_table[M*b + 2*i_" in g and "+ 1]" in g for g in gone)
    assert [re.sub(r"^L\d+ +", "", n) for n in new] == [
        f"load  {t}[ds(128*block_table_{n}, 256), ds(0, 128)]"
        for t, n in (
            ("key_cache", re.search(r"block_table_(\d+)", new[0]).group(1)),
            ("value_cache", re.search(r"block_table_(\d+)", new[1]).group(1)),
        )
    ]


def test_paged_heads_tail_differs_only_in_the_domain():
    gone, new = changed(PA.paged_attention, PAB.paged_heads_tail)
    assert gone == ["domain  B <= 256; H <= 128; H % 16 == 0; P <= 1048576; M <= 1024"]
    assert new == ["domain  B <= 256; H <= 128; P <= 1048576; M <= 1024"]


def test_paged_unmasked_partial_is_numeric_only():
    # the softmax's column mask is tile math, not an access: the schedule is the correct one's
    assert changed(PA.paged_attention, PAB.paged_unmasked_partial) == ([], [])


# ------------------------------------------------------------------ decode_split_k


def test_decode_split_k_splits_prefetch_and_offsets():
    text = listing(DS.decode_split_k)
    assert "grid    b < B, hb < GS*Hkv, split < max(1, NS)" in text
    assert (
        "NS == min(cdiv(512, B*Hkv*cdiv(GS, 16)), "
        "max(cdiv(MAXLEN, 64) // 8, min(8, cdiv(MAXLEN, 64))))"
    ) in text
    assert re.search(r"k_cache +input +float16\[NP, 64, Hkv, 64\]  index int64", text)
    b = body(DS.decode_split_k)
    pps = r"\(\(NS \+ \(max\(0, cache_seqlens_\d+\) \+ 63\) // 64 - 1\) // NS\)"
    # phase 1: the decode launch on the first Hkv*G head blocks of each split
    assert b.splitlines()[0] == "if hb < Hkv*((GS + 15) // 16) and split < NS:"
    # peeled page-table load at split_start // 64, masked by split_start < split_end
    assert re.search(rf"load  page_table\[b, split\*{pps}\]  mask 64\*split\*{pps} < min\(", b)
    # the page loop carries the prefetched entry
    loop = next(n for n in lower(DS.decode_split_k).walk() if isinstance(n, Loop) and n.carried)
    assert len(loop.carried) == 1
    # the prefetch is masked: a masked-off read gives 0, not an element of the table, so
    # the carried entry is pinned to no index and may also be 0
    assert re.search(
        r"carry page_table_\d+_carried = page_table\[\]  \(page_table_\d+_carried == 0 or "
        r"\(0 <= page_table_\d+_carried and page_table_\d+_carried < NP\)\)",
        b,
    )
    # K/V at (page, t, kv_head, d) of [pages, 64, Hkv, 64]
    assert re.search(
        r"load  k_cache\[page_table_\d+_carried, ds\(0, 64\), "
        r"hb // \(\(GS \+ 15\) // 16\), ds\(0, 64\)\]",
        b,
    )
    # the prefetch of the next entry at start + 64, masked by start + 64 < split_end
    assert re.search(
        rf"load  page_table\[b, i_\d+ \+ split\*{pps} \+ 1\]  mask 64\*i_\d+ \+ "
        rf"64\*split\*{pps} \+ 64 < min\(",
        b,
    )
    # empty splits store nothing; the reduce (split 0) skips them with the same bounds
    assert re.search(
        r"store mid_o\[b, ds\(.*\), split, ds\(0, 64\)\]  mask .* and "
        rf"64\*split\*{pps} < min\(",
        b,
    )
    assert "barrier(launch)" in b and "if split == 0:" in b
    assert re.search(
        rf"for i_\d+ in \[0, max\(1, NS\)\):\n +load  mid_lse\[b, hb, i_\d+\]  mask 64\*i_\d+\*{pps}",
        b,
    )
    # ... over max(NS, 1) lanes (the padded split tile), the padding masked by s < NS
    assert re.search(r"load  mid_o\[b, hb, i_\d+, ds\(0, 64\)\]  mask .* and i_\d+ < NS$", b, re.M)
    assert b.splitlines()[-1].strip() == "store out[b, hb, ds(0, 64)]"


def test_decode_unmasked_prefetch_differs_only_in_the_prefetch_mask():
    gone, new = changed(DS.decode_split_k, DSB.decode_unmasked_prefetch)
    assert len(gone) == len(new) == 1
    assert "load  page_table[b, i_" in gone[0] and "mask" in gone[0]
    assert new[0] == gone[0].split("  mask")[0] + "  -> " + gone[0].split("  -> ")[1]


def test_decode_offsets_int32_differs_only_in_the_cache_index_width():
    gone, new = changed(DS.decode_split_k, DSB.decode_offsets_int32)
    assert [g.split()[0] for g in gone] == ["k_cache", "v_cache"]
    assert new == [g.replace("  index int64", "") for g in gone]


def test_decode_zero_splits_differs_only_in_the_admitted_lengths():
    gone, new = changed(DS.decode_split_k, DSB.decode_zero_splits)
    assert [g.replace("MAXLEN >= 1", "MAXLEN >= 0") for g in gone[:1]] == new[:1]
    # the declaration, and the declared range the two reads of it show
    assert gone[1] == "cache_seqlens  input   int32[B]  values 1 <= v and v <= MAXLEN"
    assert new[1] == "cache_seqlens  input   int32[B]  values 0 <= v and v <= MAXLEN"
    assert len(gone) == len(new) == 4
    for g, n in zip(gone[2:], new[2:]):
        assert "load  cache_seqlens[b]" in g
        assert n == re.sub(r"\(1 <= (cache_seqlens_\d+)", r"(0 <= \1", g)


# ------------------------------------------------------------------ compressor_pool


def test_compressor_pool_stages_and_index_formulas():
    text = listing(CP.compressor_pool)
    assert "grid    p < max(8, 8*(B // 16), cdiv(B*S, 64))" in text
    assert (
        "domain  B % 16 == 0; B <= 1024; S <= 128; B*S <= 65536; DM % 512 == 0; DM <= 8192" in text
    )
    assert re.search(r"kv_cache +input +bfloat16\[32\*B, 512\]  updated", text)
    assert re.search(r"start_pos +input +int32\[1\]  values 0 <= v and v < 4096", text)
    b = body(CP.compressor_pool)
    assert b.count("barrier(launch)") == 3
    # stage 1: cdiv(B*S, 64) programs of 64 rows, the tail masked, inside the column-chunk loop
    assert "if p < (B*S + 63) // 64:" in b
    assert re.search(
        r"load  x\[ds\(64\*p, 64\), ds\(512\*i_\d+, 512\)\]  mask _c0 \+ 64\*p < B\*S", b
    )
    assert re.search(
        r"store kv_proj\[ds\(64\*p, 64\), ds\(64\*i_\d+, 64\)\]  mask _c0 \+ 64\*p < B\*S", b
    )
    # the window's tokens into slots (start_pos % 128 + s) % 128, from scratch rows b*S + s
    assert re.search(r"for i_\d+ in \[0, min\(S, -\(start_pos_\d+ % 128\) \+ 128\)\):", b)
    assert re.search(r"load  kv_proj\[S\*i_\d+ \+ i_\d+, ds\(64\*p, 64\)\]", b)
    assert re.search(
        r"store kv_state\[i_\d+, \(i_\d+ \+ start_pos_\d+ % 128\) % 128, ds\(64\*p, 64\)\]", b
    )
    # stage 2: (batch chunk of 16, head block), 64 or 128 wide by B*S, seeded from slot 127
    assert "if B*S >= 64:" in b and "if B*S < 64:" in b
    assert "if S + start_pos_" in b and "% 128 >= 128 and p < 8*(B // 16):" in b
    assert "load  score_state[ds(16*(p // 8), 16), 127, ds(64*(p % 8), 64)]" in b
    assert "load  kv_state[ds(16*(p // 4), 16), 127, ds(128*(p % 4), 128)]" in b
    assert re.search(
        r"load  score_proj\[S\*i_\d+ \+ 16\*S\*\(p // 8\) - start_pos_\d+ % 128 \+ 127, ", b
    )
    assert re.search(r"for i_\d+ in \[0, 127\):", b)
    assert "store pooled_kv[ds(16*(p // 8), 16), ds(64*(p % 8), 64)]" in b
    # stage 3: cache row b*32 + start_pos // 128 in 512 // 64 programs
    assert re.search(r"store kv_cache\[32\*i_\d+ \+ start_pos_\d+ // 128, ds\(64\*p, 64\)\]", b)
    # stage 4: tokens [pre_tokens, S) into the next window
    assert re.search(r"for i_\d+ in \[-\(start_pos_\d+ % 128\) \+ 128, S\):", b)


def test_compressor_floor_div_differs_only_in_the_dispatch_count():
    gone, new = changed(CP.compressor_pool, CPB.compressor_floor_div)
    assert [re.sub(r"^L\d+ +", "", g) for g in gone] == ["if p < (B*S + 63) // 64:"]
    assert [re.sub(r"^L\d+ +", "", n) for n in new] == ["if p < B*S // 64:"]


def test_compressor_cache_row_differs_only_in_the_positions():
    gone, new = changed(CP.compressor_pool, CPB.compressor_cache_row)
    assert [g.split("values")[1] for g in gone if "values" in g] == [" 0 <= v and v < 4096"]
    assert [n.split("values")[1] for n in new if "values" in n] == [" 0 <= v and v < 1048576"]
    # the start_pos read's range shows where it is loaded, and nothing else changes
    assert len(gone) == len(new) == 2
    assert all("start_pos" in g for g in gone + new)
