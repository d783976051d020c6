"""tileproof's numeric executor against plain XLA and Pallas interpret mode, in one run.

The same computation three ways, on whatever ``jax.devices()`` gives by default
(CPU here, a GPU where JAX has one):

(a) the plain XLA reference, jit-compiled;
(b) tileproof's executor of the kernel spec (``tileproof.verify.numeric.executor``),
    jit-compiled, flags included;
(c) an equivalent ``pallas_call(..., interpret=True)``.

Cases: a 128x128-tile elementwise add over 64, 128, 256 and 512 programs, and a
small flash-attention forward.  Prints the median wall time of each (after a
warm-up, ``block_until_ready``) and the ratios.  Target: the executor within 3x
of XLA at every grid size, linear in the grid, and >= 50x faster than Pallas
interpret at 512 programs.

    python benchmarks/numeric_vs_pallas.py [--reps 7] [--device cpu|gpu] [--no-pallas]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

import tileproof.spec as tp
from tileproof.verify.numeric import executor

T = 128  # add tile
BQ = BK = 64  # flash-attention blocks
D = 64


# ----------------------------------------------------------------------------- add


@tp.kernel(
    grid={"i": "G"},
    tensors=dict(
        x=tp.Input(("G*128", 128)), y=tp.Input(("G*128", 128)), o=tp.Output(("G*128", 128))
    ),
)
def tiled_add(x, y, o):
    i = tp.program_id(0)
    rows = tp.ds(i * T, T)
    tp.store(
        o, (rows, slice(None)), tp.load(x, (rows, slice(None))) + tp.load(y, (rows, slice(None)))
    )


def add_xla(x, y):
    return x + y


def add_pallas(x, y):
    def kern(x_ref, y_ref, o_ref):
        o_ref[...] = x_ref[...] + y_ref[...]

    g = x.shape[0] // T
    spec = pl.BlockSpec((T, T), lambda i: (i, 0))
    return pl.pallas_call(
        kern,
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(g,),
        in_specs=[spec, spec],
        out_specs=spec,
        interpret=True,
    )(x, y)


# ----------------------------------------------------------------------------- flash attention


@tp.kernel(
    grid={"h": "BH", "qb": "S // 64"},
    assume=["S % 64 == 0"],
    tensors=dict(
        q=tp.Input(("BH", "S", 64)),
        k=tp.Input(("BH", "S", 64)),
        v=tp.Input(("BH", "S", 64)),
        o=tp.Output(("BH", "S", 64)),
    ),
)
def flash_fwd(q, k, v, o):
    h, qb = tp.program_id(0), tp.program_id(1)
    s_len = tp.size("S")
    qt = tp.load(q, (h, tp.ds(qb * BQ, BQ), slice(None))) * (1.0 / np.sqrt(D))

    def body(j, carry):
        m, l, acc = carry
        kt = tp.load(k, (h, tp.ds(j * BK, BK), slice(None)))
        vt = tp.load(v, (h, tp.ds(j * BK, BK), slice(None)))
        s = qt @ kt.T
        m_new = jnp.maximum(m, s.max(axis=1))
        p = jnp.exp(s - m_new[:, None])
        alpha = jnp.exp(m - m_new)
        return m_new, alpha * l + p.sum(axis=1), alpha[:, None] * acc + p @ vt

    init = (jnp.full((BQ,), -jnp.inf), jnp.zeros((BQ,)), jnp.zeros((BQ, D)))
    _, l, acc = lax.fori_loop(0, s_len // BK, body, init)
    tp.store(o, (h, tp.ds(qb * BQ, BQ), slice(None)), acc / l[:, None])


def flash_xla(q, k, v):
    s = jnp.einsum("hqd,hkd->hqk", q, k) / np.sqrt(D)
    return jnp.einsum("hqk,hkd->hqd", jax.nn.softmax(s, axis=-1), v)


def flash_pallas(q, k, v):
    bh, s_len, _ = q.shape

    def kern(q_ref, k_ref, v_ref, o_ref):
        qt = q_ref[0] * (1.0 / np.sqrt(D))

        def body(j, carry):
            m, l, acc = carry
            kt = k_ref[0, pl.ds(j * BK, BK), :]
            vt = v_ref[0, pl.ds(j * BK, BK), :]
            s = qt @ kt.T
            m_new = jnp.maximum(m, s.max(axis=1))
            p = jnp.exp(s - m_new[:, None])
            alpha = jnp.exp(m - m_new)
            return m_new, alpha * l + p.sum(axis=1), alpha[:, None] * acc + p @ vt

        init = (jnp.full((BQ,), -jnp.inf), jnp.zeros((BQ,)), jnp.zeros((BQ, D)))
        _, l, acc = lax.fori_loop(0, s_len // BK, body, init)
        o_ref[0] = acc / l[:, None]

    qspec = pl.BlockSpec((1, BQ, D), lambda h, i: (h, i, 0))
    kvspec = pl.BlockSpec((1, s_len, D), lambda h, i: (h, 0, 0))
    return pl.pallas_call(
        kern,
        out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
        grid=(bh, s_len // BQ),
        in_specs=[qspec, kvspec, kvspec],
        out_specs=qspec,
        interpret=True,
    )(q, k, v)


# ----------------------------------------------------------------------------- timing


def median_time(fn, args, reps: int) -> float:
    return paired_times([fn], args, reps)[0]


def paired_times(fns, args, reps: int) -> list[float]:
    """Median wall time of each function, measured interleaved (so load on a shared machine
    hits all alike), after one warm-up call each (compilation)."""
    for fn in fns:
        jax.block_until_ready(fn(*args))
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--device", default=None, help="cpu or gpu (default: jax's default device)")
    ap.add_argument("--no-pallas", action="store_true", help="skip Pallas interpret mode")
    ap.add_argument("--grids", default="64,128,256,512")
    ap.add_argument("--check", action="store_true", help="exit 1 if the targets do not hold")
    args = ap.parse_args(argv)
    if args.device:
        jax.config.update("jax_platforms", {"gpu": "cuda"}.get(args.device, args.device))
    dev = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {dev.platform} ({dev.device_kind}), {len(jax.devices())} device(s)"
    )
    rng = np.random.default_rng(0)
    rows = []
    grids = [int(g) for g in args.grids.split(",")]

    print(f"\nelementwise add, {T}x{T} tiles (median of {args.reps}, ms)")
    print(
        f"{'programs':>8} {'xla':>9} {'tileproof':>10} {'pallas-int':>11} {'tp/xla':>7} {'pallas/tp':>10}"
    )
    for g in grids:
        x = jnp.asarray(rng.standard_normal((g * T, T)).astype(np.float32))
        y = jnp.asarray(rng.standard_normal((g * T, T)).astype(np.float32))
        run = executor(tiled_add, {"G": g})
        t_x, t_t = paired_times(
            [jax.jit(add_xla), lambda x, y, run=run: run({"x": x, "y": y})], (x, y), args.reps
        )
        out, flags = run({"x": x, "y": y})
        assert flags.ok and np.allclose(out["o"], x + y), "executor result differs"
        t_p = (
            float("nan")
            if args.no_pallas
            else median_time(jax.jit(add_pallas), (x, y), max(1, args.reps // 2))
        )
        rows.append(("add", g, t_x, t_t, t_p))
        print(
            f"{g:>8} {t_x * 1e3:>9.2f} {t_t * 1e3:>10.2f} {t_p * 1e3:>11.1f} {t_t / t_x:>7.2f} {t_p / t_t:>10.1f}"
        )

    print(f"\nflash-attention forward, D={D}, blocks {BQ}x{BK} (median of {args.reps}, ms)")
    print(
        f"{'BH x S':>10} {'programs':>8} {'xla':>9} {'tileproof':>10} {'pallas-int':>11} {'tp/xla':>7} {'pallas/tp':>10}"
    )
    for bh, s_len in ((2, 256), (4, 512)):
        q, k, v = (
            jnp.asarray(rng.standard_normal((bh, s_len, D)).astype(np.float32)) for _ in range(3)
        )
        run = executor(flash_fwd, {"BH": bh, "S": s_len})
        t_x, t_t = paired_times(
            [jax.jit(flash_xla), lambda q, k, v, run=run: run({"q": q, "k": k, "v": v})],
            (q, k, v),
            args.reps,
        )
        with jax.default_matmul_precision("highest"):  # a GPU's TF32 default is not the point
            out, flags = run({"q": q, "k": k, "v": v})
            want = jax.jit(flash_xla)(q, k, v)
        assert flags.ok and np.allclose(out["o"], want, atol=1e-4), "executor result differs"
        t_p = (
            float("nan")
            if args.no_pallas
            else median_time(jax.jit(flash_pallas), (q, k, v), max(1, args.reps // 2))
        )
        progs = bh * s_len // BQ
        rows.append(("flash", progs, t_x, t_t, t_p))
        print(
            f"{f'{bh} x {s_len}':>10} {progs:>8} {t_x * 1e3:>9.2f} {t_t * 1e3:>10.2f} {t_p * 1e3:>11.1f} "
            f"{t_t / t_x:>7.2f} {t_p / t_t:>10.1f}"
        )

    adds = [r for r in rows if r[0] == "add"]
    within = all(r[3] / r[2] <= 3.0 for r in adds)
    # linear in the grid: the executor's time grows like XLA's (the same O(G) work; caches make
    # neither exactly proportional on a CPU), i.e. tp/xla does not grow with the grid
    lo, hi = adds[0], adds[-1]
    growth = (hi[3] / lo[3]) / (hi[2] / lo[2])
    linear = growth <= 2.0
    big = [r for r in adds if r[1] == 512]
    speedup = big[0][4] / big[0][3] if big and not args.no_pallas else float("nan")
    fast = args.no_pallas or not big or speedup >= 50
    print(
        f"\ntime per program (us) at {lo[1]} -> {hi[1]} programs: xla {lo[2] / lo[1] * 1e6:.2f} -> "
        f"{hi[2] / hi[1] * 1e6:.2f}, tileproof {lo[3] / lo[1] * 1e6:.2f} -> {hi[3] / hi[1] * 1e6:.2f}"
        + (
            ""
            if args.no_pallas
            else f", pallas-interpret {lo[4] / lo[1] * 1e6:.0f} -> {hi[4] / hi[1] * 1e6:.0f}"
        )
    )
    print(
        f"targets: executor <= 3x XLA at every grid: {'yes' if within else 'NO'}; "
        f"linear in the grid (grows {growth:.2f}x as fast as XLA, <= 2): {'yes' if linear else 'NO'}; "
        f">= 50x faster than Pallas interpret at 512 programs: "
        f"{'yes' if fast else 'NO'} ({speedup:.0f}x)"
    )
    return 0 if (within and linear and fast) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
