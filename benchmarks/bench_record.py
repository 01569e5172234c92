"""Time of one record (``RunMetrics.__call__``: every quantity of a run file at one step) against
the earlier formulation, which allocated two more (n, m) float64 buffers per record.

Usage: python benchmarks/bench_record.py [--widths 1000 10000] [--repeats 41]

Problem: ss_fig1's sizes (n = 100 training and 200 test points in 5 dimensions plus a bias,
float64, one thread), W a small random step away from W0. Both functions are timed alternately
in this process (median of ``--repeats`` calls each) and must return the same numbers, bit for bit.
"""

from __future__ import annotations

import argparse
import statistics
import time
import types

import torch

from minnorm.core.model import augment_inputs, init_weights, network_outputs, readout
from minnorm.core.target import min_norm_target
from minnorm.training.resources import retain_freed_memory
from minnorm.training.run_record import RunMetrics


def before(metrics: RunMetrics, W: torch.Tensor) -> dict[str, float]:
    """The quantities the earlier RunMetrics computed first: relu into a new buffer, flips as a
    float64 mean, the test outputs through ``network_outputs``."""
    t = metrics.target
    Z = t.Xt @ W.T
    f = readout(Z, t.a)
    flips = float(((Z > 0) != t.S).to(torch.float64).mean())
    del Z
    diff = W - t.W_star
    in_range, perp = t.projection_norms(diff)
    f_test = network_outputs(W, metrics.Xt_test, t.a)
    err = f_test - metrics.y_test
    rms = lambda v: float(torch.sqrt(torch.mean(v**2)))  # noqa: E731
    return {
        "train_loss": float(torch.mean((f - t.y) ** 2)),
        "dist_to_target": float(torch.linalg.vector_norm(diff)),
        "dist_to_target_range": in_range,
        "dist_to_target_perp": perp,
        "dist_from_init": float(torch.linalg.vector_norm(W - t.W0)),
        "activation_flip_fraction": flips,
        "test_loss": float(torch.mean(err**2)),
        "gap_linearized": rms(f_test - metrics.f_linear_test),
        "gap_kernel": rms(f_test - metrics.f_kernel_test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=41)
    args = parser.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()  # as in a training job
    print("| m | before, ms per record | now, ms per record | ratio |\n|---|---|---|---|")
    for m in args.widths:
        gen = torch.Generator().manual_seed(0)
        X = torch.nn.functional.normalize(
            torch.randn(100, 5, generator=gen, dtype=torch.float64), dim=1
        )
        X_test = torch.nn.functional.normalize(
            torch.randn(200, 5, generator=gen, dtype=torch.float64), dim=1
        )
        y, y_test = (
            torch.randn(100, generator=gen, dtype=torch.float64),
            torch.randn(200, generator=gen, dtype=torch.float64),
        )
        W0, a = init_weights(m, 6, 1.0, seed=0)
        target = min_norm_target(augment_inputs(X, True), y, W0, a)
        metrics = RunMetrics(
            target, types.SimpleNamespace(X_train=X, X_test=X_test, y_test=y_test), False
        )
        W = W0 + 0.01 * torch.randn(m, 6, generator=gen, dtype=torch.float64)
        now = metrics(W)
        assert all(now[k] == v for k, v in before(metrics, W).items()), (
            "the two formulations differ"
        )
        times: dict[str, list[float]] = {"before": [], "now": []}
        for _ in range(args.repeats):
            calls = (
                ("before", lambda metrics=metrics, W=W: before(metrics, W)),
                ("now", lambda metrics=metrics, W=W: metrics(W)),
            )
            for name, fn in calls:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        old, new = (statistics.median(times[k]) * 1e3 for k in ("before", "now"))
        print(f"| {m} | {old:.2f} | {new:.2f} | {old / new:.2f}x |")


if __name__ == "__main__":
    main()
