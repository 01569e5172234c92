"""Benchmark: W* from the activation pattern versus an explicit torch.func Jacobian.

Usage: .venv/bin/python benchmarks/bench_target.py [--n 1000 --dim 64 --width 10000 --repeats 3]

Both methods run in this one process on the same inputs, `--repeats` times each (median time
reported). Peak memory is the process's resident high-water mark (resource.getrusage
ru_maxrss), which sees every torch CPU allocation, unlike tracemalloc. It only ever grows, so the
pattern method runs first and its peak is read before the explicit Jacobian (~n m p 8 bytes)
exists; each peak is reported as the increase over the resident size after setup.
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, jacrev, vmap

from minnorm.core.model import TwoLayerReLU, augment_inputs, init_weights
from minnorm.core.target import min_norm_target

SPEEDUP_TARGET = 20.0  # issue 2: at least 20x faster than the explicit Jacobian


def maxrss_bytes() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def explicit_w_star(net: TwoLayerReLU, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The generic route: per-example gradients J0^T (n, m p), G = J J^T, solve, W0 + J^T alpha."""
    W0 = net.W.detach()

    def f_single(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(net, {"W": W}, (x[None, :],))[0]

    # vmap over examples of a per-example jacrev: intermediates stay O(n m) besides J itself.
    J = vmap(jacrev(f_single), in_dims=(None, 0))(W0, X).reshape(X.shape[0], -1)
    f0 = net(X).detach()
    G = J @ J.T
    L = torch.linalg.cholesky(G)
    alpha = torch.cholesky_solve((y - f0)[:, None], L)[:, 0]
    return W0 + (J.T @ alpha).reshape(W0.shape)


def time_runs(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[list[float], torch.Tensor]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--width", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    X = torch.randn(args.n, args.dim, generator=gen, dtype=torch.float64)
    X = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)
    y = torch.randn(args.n, generator=gen, dtype=torch.float64)
    W0, a = init_weights(args.width, args.dim + 1, 1.0, seed=0)
    net = TwoLayerReLU(W0, a, True)
    Xt = augment_inputs(X, True)
    baseline = maxrss_bytes()

    pattern_times, w_pattern = time_runs(
        lambda: min_norm_target(Xt, y, W0, net.a).W_star, args.repeats
    )
    pattern_peak = maxrss_bytes() - baseline
    explicit_times, w_explicit = time_runs(lambda: explicit_w_star(net, X, y), args.repeats)
    explicit_peak = maxrss_bytes() - baseline

    p = args.dim + 1
    budget = args.n * args.width * args.dim * 8
    speedup = statistics.median(explicit_times) / statistics.median(pattern_times)
    diff = float((w_pattern - w_explicit).abs().max())
    print(
        f"n = {args.n}, d = {args.dim} (p = {p}, bias), m = {args.width}, float64, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"{args.repeats} runs each"
    )
    print()
    print("| method | median time (s) | all runs (s) | peak memory increase (GB) |")
    print("|---|---|---|---|")
    for name, times, peak in (
        ("min_norm_target (activation pattern)", pattern_times, pattern_peak),
        (
            "explicit Jacobian (torch.func vmap+jacrev, J J^T, Cholesky)",
            explicit_times,
            explicit_peak,
        ),
    ):
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"| {name} | {statistics.median(times):.3f} | {runs} | {peak / 1e9:.2f} |")
    print()
    print(
        f"speedup: {speedup:.1f}x (target >= {SPEEDUP_TARGET:.0f}x: "
        f"{'met' if speedup >= SPEEDUP_TARGET else 'NOT met'})"
    )
    print(
        f"pattern peak {pattern_peak / 1e9:.2f} GB vs budget n m d 8 B = {budget / 1e9:.2f} GB: "
        f"{'met' if pattern_peak < budget else 'NOT met'}"
    )
    print(f"explicit J alone: n m p 8 B = {args.n * args.width * p * 8 / 1e9:.2f} GB")
    print(
        f"max |W*_pattern - W*_explicit| = {diff:.2e} (||W* - W0|| = "
        f"{math.sqrt(float(torch.sum((w_pattern - W0) ** 2))):.3f})"
    )


if __name__ == "__main__":
    main()
