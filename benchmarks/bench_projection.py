"""Cost of ``MinNormTarget.projection_norms`` per record against Pythagoras alone
(sqrt(||V||^2 - ||P0 V||^2), the formula before 2026-12-06). Where ||P0perp V||^2 is below
``PYTHAGORAS_MIN_SHARE`` of ||V||^2 the current method forms V - J0 G^-1 J0^T V (one more
product with the activation pattern); elsewhere it is Pythagoras.

Usage: python benchmarks/bench_projection.py [--widths 1000 10000] [--repeats 41]

Problem: ss_fig1's sizes (n = 100 points in 5 dimensions plus a bias, float64, one thread),
V = W - W* for two W, each a step from W0 towards W* plus a random one orthogonal to col(J0):
"late" (||P0perp V|| most of ||V||, as at the end of ss_fig1's runs: Pythagoras) and "early"
(||P0perp V|| about 1e-5 of ||V||, as in the first steps: the residual is formed). Both
methods are timed alternately in this process (median of ``--repeats`` calls each); the table
also gives both values of ||P0perp V||.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from minnorm.core.model import augment_inputs, init_weights
from minnorm.core.target import MinNormTarget, _pattern_vjp, min_norm_target


def pythagoras(t: MinNormTarget, V: torch.Tensor) -> tuple[float, float]:
    """The earlier formula: the perpendicular part from ||V||^2 - ||P0 V||^2."""
    u = t.jvp(V)
    range_sq = max(float(u @ t.factor.solve(u)), 0.0)
    return math.sqrt(range_sq), math.sqrt(max(float(torch.sum(V**2)) - range_sq, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    parser.add_argument("--repeats", type=int, default=41)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(100, 5, generator=gen, dtype=torch.float64)
    X = X / X.norm(dim=1, keepdim=True)
    y = torch.randn(100, generator=gen, dtype=torch.float64)
    print("| m | V | Pythagoras, ms | now, ms | extra, ms | perp (Pythagoras) | perp (now) |")
    print("|---|---|---|---|---|---|---|")
    for m in args.widths:
        W0, a = init_weights(m, 6, 1.0, seed=0)
        t = min_norm_target(augment_inputs(X, True), y, W0, a)
        step = torch.randn(W0.shape, generator=gen, dtype=torch.float64)
        outside = step - _pattern_vjp(t.Xt, t.S, t.a, t.factor.solve(t.jvp(step)))
        late = 0.1 * (W0 - t.W_star) + 0.01 * outside
        early = 0.9 * (W0 - t.W_star) + 1e-6 * outside
        for label, V in (("late", late), ("early", early)):
            times: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(args.repeats):
                for name, fn in (("old", pythagoras), ("new", MinNormTarget.projection_norms)):
                    start = time.perf_counter()
                    fn(t, V)
                    times[name].append(time.perf_counter() - start)
            old, new = (1e3 * statistics.median(times[k]) for k in ("old", "new"))
            print(
                f"| {m} | {label} | {old:.3f} | {new:.3f} | {new - old:.3f} | "
                f"{pythagoras(t, V)[1]:.6g} | {t.projection_norms(V)[1]:.6g} |"
            )


if __name__ == "__main__":
    main()
