"""Steps/s of the Lightning training path (GDSystem, chunked) against a raw PyTorch GD loop.

Usage: python benchmarks/bench_train.py [--repeats 3] [--quick]
Prints markdown tables (medians over repeats) for BENCHMARKS.md. `--quick` only measures the
fused float64 ms/step at the sizes used to plan the default config.
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import subprocess
import time

import pytorch_lightning as pl
import torch

from minnorm.gd_step import FusedGradient, eager_gradient_fn
from minnorm.model import TwoLayerReLU
from minnorm.system import FullBatchData, GDSystem, make_trainer, quiet_lightning

LR = 1e-3  # small enough that no size diverges within the timed steps


def problem(n: int, p: int, m: int, dtype: torch.dtype) -> tuple[TwoLayerReLU, torch.Tensor, torch.Tensor]:
    """A random model (bias: inputs of dimension p - 1) and full batch of n points."""
    gen = torch.Generator().manual_seed(0)
    X = torch.nn.functional.normalize(torch.randn(n, p - 1, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(m, p, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    return TwoLayerReLU(W0.to(dtype), a.to(dtype), True), X.to(dtype), y.to(dtype)


def raw_eager_seconds(n: int, p: int, m: int, dtype: torch.dtype, steps: int) -> float:
    """Seconds per step of a hand-written autograd GD loop (half_sum loss), after 2 warm-up steps."""
    model, X, y = problem(n, p, m, dtype)
    W = model.W

    def step() -> None:
        loss = 0.5 * torch.sum((model(X) - y) ** 2)
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W.sub_(grad, alpha=LR)

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def raw_fused_seconds(n: int, p: int, m: int, dtype: torch.dtype, steps: int) -> tuple[float, float]:
    """(seconds per step, first-call compile seconds) of a loop over the compiled gradient."""
    model, X, y = problem(n, p, m, dtype)
    gradient = FusedGradient(model, X, y, "half_sum")
    W = model.W
    start = time.perf_counter()
    gradient(W)
    compile_s = time.perf_counter() - start
    assert gradient.compiled, "torch.compile failed; the fused numbers would be eager ones"
    gradient(W)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            W.sub_(gradient(W)[0], alpha=LR)
    return (time.perf_counter() - start) / steps, compile_s


class _ChunkClock(pl.Callback):
    """Time from the end of the first chunk (after compilation and Trainer start) to the last."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_batch_end(self, *args: object) -> None:
        self.marks.append(time.perf_counter())


def system_seconds(n: int, p: int, m: int, dtype: torch.dtype, impl: str, steps: int, chunk: int) -> tuple[float, float]:
    """(seconds per step after the first chunk, seconds of setup + first chunk) through Lightning."""
    model, X, y = problem(n, p, m, dtype)
    boundaries = list(range(0, steps + chunk + 1, chunk))
    system = GDSystem(model, lr=LR, loss="half_sum", step_impl=impl, boundaries=boundaries)
    clock = _ChunkClock()
    start = time.perf_counter()
    trainer = make_trainer("cpu", [clock])
    with quiet_lightning():
        trainer.fit(system, datamodule=FullBatchData(X, y, len(boundaries) - 1))
    return (clock.marks[-1] - clock.marks[0]) / steps, clock.marks[0] - start


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    model_name = subprocess.run("lscpu | sed -n 's/^Model name: *//p'", shell=True, capture_output=True,
                                text=True, check=False).stdout.strip()
    print(f"{datetime.date.today()}, {model_name}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, repeats {args.repeats}\n")
    if args.quick:
        print("| n | p | m | fused float64 ms/step | compile s |\n|---|---|---|---|---|")
        for n, p, m in [(100, 6, 1000), (100, 6, 10000), (300, 64, 2000)]:
            runs = [raw_fused_seconds(n, p, m, torch.float64, 100) for _ in range(args.repeats)]
            print(f"| {n} | {p} | {m} | {1e3 * statistics.median(r[0] for r in runs):.2f} | {runs[0][1]:.1f} |",
                  flush=True)
            torch._dynamo.reset()
        return

    print("| n | p | m | dtype | raw eager ms/step | system eager ms/step | ratio | "
          "system fused ms/step | fused speed-up vs raw eager | setup + 1st chunk s (fused) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, p, m, steps, chunk in [(100, 6, 10000, 200, 50), (1000, 65, 10000, 16, 4)]:
        for dtype in (torch.float32, torch.float64):
            raw, sys_eager, sys_fused, setup = [], [], [], []
            for _ in range(args.repeats):  # interleaved, so a burst of load hits all variants alike
                raw.append(raw_eager_seconds(n, p, m, dtype, steps))
                sys_eager.append(system_seconds(n, p, m, dtype, "eager", steps, chunk)[0])
                fused, first = system_seconds(n, p, m, dtype, "fused", steps, chunk)
                sys_fused.append(fused)
                setup.append(first)
            r, e, f = (statistics.median(v) for v in (raw, sys_eager, sys_fused))
            print(f"| {n} | {p} | {m} | {str(dtype)[6:]} | {1e3 * r:.2f} | {1e3 * e:.2f} | {e / r:.2f} | "
                  f"{1e3 * f:.2f} | {r / f:.2f} | {statistics.median(setup):.1f} |", flush=True)
        torch._dynamo.reset()  # a fresh static graph for the next size, as in a real one-run job


if __name__ == "__main__":
    main()
