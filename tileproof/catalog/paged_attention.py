"""Spec of `paged_attention`: paged decode attention with a two-page fast path (docs/catalog.md §4).

From pypto PR #470 (`build_paged_attention_multitier_program`): one query tile of 16
heads per (batch b, tile q), rows ``b*H + q*16 .. +16`` of the flat ``[B*H, D]`` query;
the sequence's ``cdiv(seq_len, 128)`` pages are walked in two tiers, pairs first
(``end2 = (n_pages // 2) * 2``) and then the tail page, with an online softmax (running
m, l, o) across them; the output rows are written once, after the last page.

The authors' pair tier slices ``2*128`` contiguous rows starting at page
``block_table[b, j]`` and is only right when page ``j + 1`` is the next physical page
(`assume_contiguous_blocks`). The correct spec reads the two pages of a pair through the
table, one at a time, and runs one softmax over their joined 256 columns; the defect is
:data:`tileproof.catalog.bugs` ``paged_pair_contiguous``.

Sizes: B sequences, H query heads (one shared KV head, as in the authors' kernel), P pages
in the pool, M table entries per sequence (``max_model_len / 128``); head dim 128 and page
128 are the kernel's constants. The caches are addressed in 64 bits (the kernel computes
``bidx * block_size`` with its INT64 config scalars), so a pool of up to ``2**20`` pages
is admissible; the softmax scale is the 1.0 the authors pass to `softmax_prepare`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp

from .references import paged_attention as _paged_attention

__all__ = ["SPECS", "make_paged_attention", "paged_attention"]

PAGE = 128  # rows of a KV block (block_size)
D = 128  # head dim
QT = 16  # query heads per tile (q_tile)
SCALE = 1.0  # the authors' softmax_prepare scale
_NEG = -1e30  # a finite -inf: exp(_NEG - m) is 0, and no inf - inf
_HI = lax.Precision.HIGHEST
_F32 = jnp.float32


def _reference(q, k_cache, v_cache, block_table, seq_lens):
    """The catalog reference on the kernel's flat layouts ([B*H, D] rows, [P*128, D] pools)."""
    b = seq_lens.shape[0]
    out = _paged_attention(
        q.astype(_F32).reshape(b, -1, D),
        k_cache.reshape(-1, PAGE, D),
        v_cache.reshape(-1, PAGE, D),
        block_table.reshape(b, -1),
        seq_lens,
        scale=SCALE,
    )
    return {"out": out.reshape(-1, D)}


def _online_update(carry, qi, kj, vj, valid, cols):
    """softmax_prepare on the valid columns, then online_update of (m, l, o)."""
    m_i, l_i, o_i = carry
    s = jnp.dot(qi, kj.astype(_F32).T, precision=_HI) * SCALE  # [16, cols]
    s = jnp.where(valid, s, _NEG)
    m_ij = jnp.max(s, axis=1, keepdims=True)
    p = jnp.where(valid, jnp.exp(s - m_ij), 0.0)
    l_ij = jnp.sum(p, axis=1, keepdims=True)
    o_ij = jnp.dot(p, vj.astype(_F32), precision=_HI)
    m_new = jnp.maximum(m_i, m_ij)
    alpha, beta = jnp.exp(m_i - m_new), jnp.exp(m_ij - m_new)
    return m_new, alpha * l_i + beta * l_ij, alpha * o_i + beta * o_ij


def make_paged_attention(
    *,
    pair_contiguous: bool = False,
    heads_tail: bool = False,
    unmasked_partial: bool = False,
    name: str | None = None,
) -> tp.Kernel:
    """The spec, or one of its docs/catalog.md §4 defects.

    ``pair_contiguous``: the pair tier slices 256 contiguous rows from page
    ``block_table[b, j]`` (the authors' `assume_contiguous_blocks`).
    ``heads_tail``: the domain drops ``H % 16 == 0`` (the kernel has no head mask).
    ``unmasked_partial``: the softmax takes all columns of a partial page (numeric only:
    the schedule model is the correct one's).
    """
    domain = ["B <= 256", "H <= 128", "P <= 2**20", "M <= 1024"]
    if not heads_tail:
        domain.insert(2, "H % 16 == 0")  # the query tiles have no head mask

    def valid_cols(n: int, valid):
        cols = jnp.arange(n)[None, :]
        return jnp.ones((1, n), bool) if unmasked_partial else cols < valid

    @tp.kernel(
        name=name or "paged_attention",
        grid={"b": "B", "q": "cdiv(H, 16)"},
        assume=domain,
        defaults=dict(B=64, H=16, P=4096, M=64),
        tensors=dict(
            query=tp.Input(("B*H", D), "bfloat16"),
            key_cache=tp.Input(("P*128", D), "bfloat16", index_bits=64),
            value_cache=tp.Input(("P*128", D), "bfloat16", index_bits=64),
            block_table=tp.Input(("B*M",), "int32", values="0 <= v < P"),
            context_lens=tp.Input(("B",), "int32", values="1 <= v <= 128*M"),
            out=tp.Output(("B*H", D), "float32"),
        ),
        reference=_reference,
    )
    def paged_attention(query, key_cache, value_cache, block_table, context_lens, out):
        """Per (b, q): x2 tier over page pairs, x1 tier over the tail page, one output write."""
        b, q = tp.program_id(0), tp.program_id(1)
        H, M = tp.size("H"), tp.size("M")
        cur_offset = b * H + q * QT
        qi = tp.load(query, (tp.ds(cur_offset, QT), slice(None))).astype(_F32)
        cur_seq = tp.load(context_lens, (b,))
        bn_this_batch = (cur_seq + PAGE - 1) // PAGE
        n2 = bn_this_batch // 2
        end2 = n2 * 2

        def kernel_x2(i, carry):
            bn2 = 2 * i
            bidx_0 = tp.load(block_table, (b * M + bn2,))
            valid_0 = jnp.minimum(PAGE, cur_seq - bn2 * PAGE)
            valid_1 = jnp.minimum(PAGE, cur_seq - (bn2 + 1) * PAGE)
            if pair_contiguous:
                row_pair = bidx_0 * PAGE
                kj = tp.load(key_cache, (tp.ds(row_pair, 2 * PAGE), slice(None)))
                vj = tp.load(value_cache, (tp.ds(row_pair, 2 * PAGE), slice(None)))
            else:
                bidx_1 = tp.load(block_table, (b * M + bn2 + 1,))
                rows_0, rows_1 = tp.ds(bidx_0 * PAGE, PAGE), tp.ds(bidx_1 * PAGE, PAGE)
                kj = jnp.concatenate(
                    [
                        tp.load(key_cache, (rows_0, slice(None))),
                        tp.load(key_cache, (rows_1, slice(None))),
                    ]
                )
                vj = jnp.concatenate(
                    [
                        tp.load(value_cache, (rows_0, slice(None))),
                        tp.load(value_cache, (rows_1, slice(None))),
                    ]
                )
            valid = valid_cols(2 * PAGE, valid_0 + valid_1)
            return _online_update(carry, qi, kj, vj, valid, 2 * PAGE)

        def kernel_x1(bn3, carry):
            bidx = tp.load(block_table, (b * M + bn3,))
            valid_len = jnp.minimum(PAGE, cur_seq - bn3 * PAGE)
            row = bidx * PAGE
            kj = tp.load(key_cache, (tp.ds(row, PAGE), slice(None)))
            vj = tp.load(value_cache, (tp.ds(row, PAGE), slice(None)))
            return _online_update(carry, qi, kj, vj, valid_cols(PAGE, valid_len), PAGE)

        init = (jnp.full((QT, 1), _NEG, _F32), jnp.zeros((QT, 1), _F32), jnp.zeros((QT, D), _F32))
        carry = lax.fori_loop(0, n2, kernel_x2, init)
        _m, l_i, o_i = lax.fori_loop(end2, bn_this_batch, kernel_x1, carry)
        tp.store(out, (tp.ds(cur_offset, QT), slice(None)), o_i / l_i)

    return paged_attention


paged_attention = make_paged_attention()

SPECS = (paged_attention,)
