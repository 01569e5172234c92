"""Steps/s of the Lightning training path (GDSystem, chunked) against a raw PyTorch GD loop.

Usage: python benchmarks/bench_train.py [--repeats 3] [--quick] [--threads N] [--chunk 100]
Prints markdown tables (medians over repeats) for BENCHMARKS.md. `--quick` only measures the
fused float64 ms/step at the sizes used to plan the default config.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import time

import pytorch_lightning as pl
import torch

from minnorm.core.model import TwoLayerReLU
from minnorm.training.gd_step import select_step
from minnorm.training.resources import retain_freed_memory
from minnorm.training.system import FullBatchData, GDSystem, make_trainer, quiet_lightning

LR = 1e-3  # small enough that no size diverges within the timed steps


def problem(
    n: int, p: int, m: int, dtype: torch.dtype
) -> tuple[TwoLayerReLU, torch.Tensor, torch.Tensor]:
    """A random model (bias: inputs of dimension p - 1) and full batch of n points."""
    gen = torch.Generator().manual_seed(0)
    X = torch.nn.functional.normalize(
        torch.randn(n, p - 1, generator=gen, dtype=torch.float64), dim=1
    )
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(m, p, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    return TwoLayerReLU(W0.to(dtype), a.to(dtype), True), X.to(dtype), y.to(dtype)


def raw_fused_seconds(
    n: int, p: int, m: int, dtype: torch.dtype, steps: int
) -> tuple[float, float]:
    """(seconds per step, first-call compile seconds) of a loop over the fused gradient as a
    training job chooses it (``select_step``: the C++ kernel or the compiled formula)."""
    model, X, y = problem(n, p, m, dtype)
    gradient = select_step("fused", model, X, y, "half_sum")
    gradient.lay_out(model.W)  # the setup step training does
    W = model.W
    start = time.perf_counter()
    gradient(W)
    compile_s = time.perf_counter() - start
    assert gradient.name != "uncompiled-matmul", "torch.compile failed; fused numbers are eager"
    gradient(W)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            W.sub_(gradient(W)[0], alpha=LR)
    return (time.perf_counter() - start) / steps, compile_s


class _InterleavedRaw(pl.Callback):
    """After every chunk of the system, time a raw loop doing the same number of steps.

    The two alternate every few steps, so both see the same load from other processes (the
    2 cores are shared); the first chunk (Trainer start, compilation) is not counted.
    """

    def __init__(self, raw_step, chunk: int) -> None:
        self.raw_step, self.chunk = raw_step, chunk
        self.system_s: list[float] = []
        self.raw_s: list[float] = []
        self._last: float | None = None
        self.first_chunk_end: float | None = None

    def on_train_batch_end(self, *args: object) -> None:
        now = time.perf_counter()
        if self._last is None:
            self.first_chunk_end = now
        else:
            self.system_s.append((now - self._last) / self.chunk)
        start = time.perf_counter()
        for _ in range(self.chunk):
            self.raw_step()
        self.raw_s.append((time.perf_counter() - start) / self.chunk)
        self._last = time.perf_counter()


def raw_eager_step(n: int, p: int, m: int, dtype: torch.dtype):
    """One step of a hand-written autograd GD loop (half_sum loss) on its own copy of the
    problem."""
    model, X, y = problem(n, p, m, dtype)
    W = model.W

    def step() -> None:
        loss = 0.5 * torch.sum((model(X) - y) ** 2)
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W.sub_(grad, alpha=LR)

    step()
    return step


def raw_fused_step(n: int, p: int, m: int, dtype: torch.dtype):
    """One step of a loop over the fused gradient as a training job chooses it, W <- W - lr grad,
    without Lightning."""
    model, X, y = problem(n, p, m, dtype)
    gradient = select_step("fused", model, X, y, "half_sum")
    gradient.lay_out(model.W)  # the setup step training does
    W = model.W.detach()

    def step() -> None:
        W.sub_(gradient(W)[0], alpha=LR)

    step()
    assert gradient.name != "uncompiled-matmul", "torch.compile failed; fused numbers are eager"
    return step


def interleaved(
    n: int, p: int, m: int, dtype: torch.dtype, impl: str, raw_step, chunks: int, chunk: int
) -> tuple[list[float], list[float], float]:
    """(system s/step per chunk, raw s/step per burst, setup + first chunk s) for one fit."""
    model, X, y = problem(n, p, m, dtype)
    boundaries = list(range(0, (chunks + 1) * chunk + 1, chunk))
    system = GDSystem(model, lr=LR, loss="half_sum", step_impl=impl, boundaries=boundaries)
    clock = _InterleavedRaw(raw_step, chunk)
    start = time.perf_counter()
    trainer = make_trainer("cpu", [clock])
    with quiet_lightning():
        trainer.fit(system, datamodule=FullBatchData(X, y, len(boundaries) - 1))
    assert clock.first_chunk_end is not None
    return clock.system_s, clock.raw_s[1:], clock.first_chunk_end - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: leave the default)"
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=100,
        help="GD steps per training_step at n = 100 (default: record.every of the default "
        "experiments)",
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="do not call retain_freed_memory() as training jobs do (glibc default)",
    )
    args = parser.parse_args()
    malloc = (
        "glibc default malloc"
        if args.default_malloc or not retain_freed_memory()
        else "retain_freed_memory()"
    )
    if args.threads:
        torch.set_num_threads(args.threads)  # a script, not the library: it may set this
    model_name = subprocess.run(
        "lscpu | sed -n 's/^Model name: *//p'",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"{datetime.date.today()}, {model_name}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, repeats {args.repeats}, chunk {args.chunk} steps at "
        f"n = 100, {malloc}\n"
    )
    if args.quick:
        print("| n | p | m | fused float64 ms/step | compile s |\n|---|---|---|---|---|")
        for n, p, m in [(100, 6, 1000), (100, 6, 10000), (300, 64, 2000)]:
            runs = [raw_fused_seconds(n, p, m, torch.float64, 100) for _ in range(args.repeats)]
            ms = 1e3 * statistics.median(r[0] for r in runs)
            print(f"| {n} | {p} | {m} | {ms:.2f} | {runs[0][1]:.1f} |", flush=True)
            torch._dynamo.reset()
        return

    print(
        "| n | p | m | dtype | raw eager | system eager | ratio | raw fused | system fused "
        "| ratio | fused speed-up vs raw eager | first fused chunk incl. setup (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    med = statistics.median
    for n, p, m, chunks, chunk in [
        (100, 6, 10000, max(6, 1200 // args.chunk), args.chunk),
        (1000, 65, 10000, 3, 4),
    ]:
        for dtype in (torch.float32, torch.float64):
            torch._dynamo.reset()  # a fresh static graph per size, as in a real one-run job
            eager_sys, eager_raw, fused_sys, fused_raw, fused_vs_eager, setup = (
                [],
                [],
                [],
                [],
                [],
                [],
            )
            for _ in range(args.repeats):
                a, b, _ = interleaved(
                    n, p, m, dtype, "eager", raw_eager_step(n, p, m, dtype), chunks, chunk
                )
                eager_sys += a
                eager_raw += b
                a, b, first = interleaved(
                    n, p, m, dtype, "fused", raw_fused_step(n, p, m, dtype), chunks, chunk
                )
                fused_sys += a
                fused_raw += b
                setup.append(first)
                a, b, _ = interleaved(
                    n, p, m, dtype, "fused", raw_eager_step(n, p, m, dtype), chunks, chunk
                )
                fused_vs_eager += [r / s for s, r in zip(a, b, strict=True)]
            eager_ratio = med(s / r for s, r in zip(eager_sys, eager_raw, strict=True))
            fused_ratio = med(s / r for s, r in zip(fused_sys, fused_raw, strict=True))
            print(
                f"| {n} | {p} | {m} | {str(dtype)[6:]} | {1e3 * med(eager_raw):.2f} "
                f"| {1e3 * med(eager_sys):.2f} | {eager_ratio:.2f} | {1e3 * med(fused_raw):.2f} "
                f"| {1e3 * med(fused_sys):.2f} | {fused_ratio:.2f} "
                f"| {med(fused_vs_eager):.2f} | {med(setup):.1f} |",
                flush=True,
            )
    print(
        "\nms/step: medians over all chunks of all repeats; ratios: medians of the per-chunk "
        "ratios (system chunk / raw burst right after it), so > 1 is Lightning's overhead."
    )


if __name__ == "__main__":
    main()
