"""Fused against eager GD steps, each timed alone (not interleaved) on a quiet machine.

Usage: python benchmarks/bench_fused.py [--repeats 5] [--steps 300] [--threads 1] [--crossover]
bench_train.py interleaves short bursts of the raw loop with the system's chunks so that both see
the same load; at n = 100, m = 10^4 each burst then starts with the other's (n, m) data evicted
from cache, which penalises the cache-friendlier fused step. This script times each variant over
whole runs of `--steps` steps, one after the other, in the same process, and reports medians of
`--repeats` repetitions; run it when nothing else uses the cores. `--crossover` adds a table of the
two compiled formulas (streamed, matmul) against p at n = 100, m = 10^4, which sets
`minnorm.training.gd_step.STREAMED_MAX_P`.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import time

import pytorch_lightning as pl
import torch

from minnorm.training.gd_step import STREAMED_MAX_P, FusedGradient, eager_gradient_fn
from minnorm.core.model import TwoLayerReLU
from minnorm.training.resources import retain_freed_memory
from minnorm.training.system import FullBatchData, GDSystem, make_trainer, quiet_lightning

LR = 1e-4  # small: no run diverges, and the activation pattern barely moves while timing
CHUNK = 100  # GD steps per training_step of the system


def problem(n: int, d: int, m: int, dtype: torch.dtype) -> tuple[TwoLayerReLU, torch.Tensor, torch.Tensor]:
    """A model with a bias (p = d + 1) and a full batch of n unit-norm points."""
    gen = torch.Generator().manual_seed(0)
    X = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(m, d + 1, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    return TwoLayerReLU(W0.to(dtype), a.to(dtype), True), X.to(dtype), y.to(dtype)


def raw_ms(impl: str, n: int, d: int, m: int, dtype: torch.dtype, steps: int, formula: str | None = None) -> float:
    """ms per step of a plain loop `W -= lr * grad` over the eager or fused gradient (`formula`:
    the fused step's, default as in training)."""
    model, X, y = problem(n, d, m, dtype)
    if impl == "eager":
        gradient = eager_gradient_fn(model, X, y, "half_sum")
    else:
        gradient = FusedGradient(model, X, y, "half_sum", formula)
        gradient.lay_out(model.W)  # the setup step training does
    W = model.W
    for _ in range(3):  # warm-up (compilation, allocator)
        grad, _ = gradient(W)
    start = time.perf_counter()
    for _ in range(steps):
        grad, _ = gradient(W)
        with torch.no_grad():
            W.sub_(grad, alpha=LR)
    return (time.perf_counter() - start) / steps * 1e3


def system_ms(impl: str, n: int, d: int, m: int, dtype: torch.dtype, steps: int) -> float:
    """ms per step of GDSystem under a Trainer, the first chunk (Trainer start, compilation) excluded."""
    model, X, y = problem(n, d, m, dtype)
    boundaries = list(range(0, steps + CHUNK + 1, CHUNK))
    system = GDSystem(model, lr=LR, loss="half_sum", step_impl=impl, boundaries=boundaries)
    stamps: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_end(self, *args: object) -> None:
            stamps.append(time.perf_counter())

    trainer = make_trainer("cpu", [Clock()])
    with quiet_lightning():
        trainer.fit(system, datamodule=FullBatchData(X, y, len(boundaries) - 1))
    return (stamps[-1] - stamps[0]) / steps * 1e3


def crossover(repeats: int, steps: int) -> None:
    """Streamed against matmul compiled formula (raw loops) as p grows, n = 100, m = 10^4."""
    print("\n| p | dtype | streamed | matmul | matmul / streamed |")
    print("|---|---|---|---|---|")
    for d in (5, 10, 15, 31):
        for dtype in (torch.float32, torch.float64):
            ms = {f: statistics.median(raw_ms("fused", 100, d, 10_000, dtype, steps, f) for _ in range(repeats))
                  for f in ("streamed", "matmul")}
            print(f"| {d + 1} | {str(dtype).removeprefix('torch.')} | {ms['streamed']:.2f} | {ms['matmul']:.2f} "
                  f"| {ms['matmul'] / ms['streamed']:.2f} |", flush=True)
    print(f"\nms per step of the raw loop, medians of {repeats} x {steps} steps; the training path picks "
          f"streamed for p <= {STREAMED_MAX_P} (minnorm.training.gd_step.STREAMED_MAX_P).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--crossover", action="store_true", help="also time both compiled formulas against p")
    parser.add_argument("--default-malloc", action="store_true",
                        help="do not call retain_freed_memory() as training jobs do (glibc default)")
    args = parser.parse_args()
    malloc = "glibc default malloc" if args.default_malloc or not retain_freed_memory() else "retain_freed_memory()"
    torch.set_num_threads(args.threads)
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    print(f"{datetime.date.today()}, {cpu}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.repeats} repeats of {args.steps} steps, n = 100, d = 5 (p = 6), m = 10000, {malloc}\n")
    print("| dtype | raw eager | system eager | raw fused | system fused | system eager / raw eager "
          "| system fused / raw fused | raw eager / system fused |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in (torch.float32, torch.float64):
        times: dict[str, list[float]] = {k: [] for k in ("raw eager", "system eager", "raw fused", "system fused")}
        for _ in range(args.repeats):
            for impl in ("eager", "fused"):
                times[f"raw {impl}"].append(raw_ms(impl, 100, 5, 10_000, dtype, args.steps))
                times[f"system {impl}"].append(system_ms(impl, 100, 5, 10_000, dtype, args.steps))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {str(dtype).removeprefix('torch.')} | {med['raw eager']:.2f} | {med['system eager']:.2f} "
              f"| {med['raw fused']:.2f} | {med['system fused']:.2f} "
              f"| {med['system eager'] / med['raw eager']:.2f} | {med['system fused'] / med['raw fused']:.2f} "
              f"| {med['raw eager'] / med['system fused']:.2f} |")
    print("\nms per step, medians over repeats; the last column is the fused training path's speed-up over "
          "the eager raw loop (target >= 2).")
    if args.crossover:
        crossover(args.repeats, args.steps)


if __name__ == "__main__":
    main()
