"""Fused against eager GD steps, each timed alone (not interleaved) on a quiet machine.

Usage: python benchmarks/bench_fused.py [--repeats 5] [--steps 300] [--threads 1] [--crossover]
       python benchmarks/bench_fused.py --widths [--repeats 3]
       python benchmarks/bench_fused.py --paths [--repeats 5] [--path-widths 10000 131072]
bench_train.py interleaves short bursts of the raw loop with the system's chunks so that both see
the same load; at n = 100, m = 10^4 each burst then starts with the other's (n, m) data evicted
from cache, which penalises the cache-friendlier fused step. This script times each variant over
whole runs of `--steps` steps, one after the other, in the same process, and reports medians of
`--repeats` repetitions; run it when nothing else uses the cores. `--crossover` adds a table of the
two compiled formulas (streamed, matmul) against p at n = 100, m = 10^4, which sets
`minnorm.training.gd_step.STREAMED_MAX_P`. `--widths` (alone) times the streamed step per neuron
from m = 10^3 to 2^20 (n = 100, p = 6, float64, one thread): the compiled formula unblocked and
blocked over m above `STREAMED_BLOCK_ABOVE_M`, and the step as training runs it
(`minnorm.training.gd_step.select_step`: the C++ kernel with one thread), each width in a fresh
process as in a training job (a second shape in one process makes dynamo compile a slower
dynamic-shape graph), and checks that the time per step per neuron at m = 2^17 is within 1.3x of
that at m = 10^4. `--paths` (alone) times every implementation of the step that runs here
(`GradientStep.name`: the C++ kernel's AVX-512, AVX2 and portable builds, the compiled streamed
formula, the compiled and uncompiled matmul formulas, eager autograd) at n = 100, p = 6, float64,
one thread, each width in one fresh process whose paths alternate repeat by repeat; it prints the
median ms per step and the ratio to the compiled streamed formula timed in the same process.
`--inductor-simdlen 256` makes inductor vectorise the compiled formulas as on a CPU with AVX2 only
(``torch._inductor.config.cpp.simdlen``; 0 leaves it its choice), the fair baseline of the AVX2
build on an AVX-512 machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time

import pytorch_lightning as pl
import torch

from minnorm.core.model import TwoLayerReLU
from minnorm.training import streamed_kernel
from minnorm.training.gd_step import (
    STREAMED_BLOCK,
    STREAMED_BLOCK_ABOVE_M,
    STREAMED_MAX_P,
    CompiledStep,
    EagerStep,
    GradientStep,
    KernelStep,
    UncompiledStep,
    select_step,
)
from minnorm.training.resources import retain_freed_memory
from minnorm.training.system import FullBatchData, GDSystem, make_trainer, quiet_lightning

LR = 1e-4  # small: no run diverges, and the activation pattern barely moves while timing
CHUNK = 100  # GD steps per training_step of the system


def problem(
    n: int, d: int, m: int, dtype: torch.dtype
) -> tuple[TwoLayerReLU, torch.Tensor, torch.Tensor]:
    """A model with a bias (p = d + 1) and a full batch of n unit-norm points."""
    gen = torch.Generator().manual_seed(0)
    X = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(m, d + 1, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    return TwoLayerReLU(W0.to(dtype), a.to(dtype), True), X.to(dtype), y.to(dtype)


# The implementations --paths times, by GradientStep.name (the compiled streamed formula is the
# baseline of its ratios; above STREAMED_BLOCK_ABOVE_M it is the blocked one, as trained).
PATHS = (
    "compiled-streamed",
    *(f"cpp-{isa}" for isa in streamed_kernel.ISAS),
    "compiled-matmul",
    "uncompiled-matmul",
    "eager",
)


def make_step(
    path: str,
    model: TwoLayerReLU,
    X: torch.Tensor,
    y: torch.Tensor,
    block: int | None = None,
) -> GradientStep:
    """The step implementation ``path``: a name of PATHS, or "trained" (``select_step``, as a
    training job chooses); ``block``: the compiled streamed formula's (None: its default)."""
    if path == "trained":
        return select_step("fused", model, X, y, "half_sum")
    if path.startswith("cpp-"):
        return KernelStep(model, X, y, "half_sum", path.removeprefix("cpp-"))
    if path == "compiled-streamed":
        return CompiledStep(model, X, y, "half_sum", "streamed", block)
    if path == "compiled-matmul":
        return CompiledStep(model, X, y, "half_sum", "matmul")
    return {"eager": EagerStep, "uncompiled-matmul": UncompiledStep}[path](model, X, y, "half_sum")


def raw_ms(
    path: str,
    n: int,
    d: int,
    m: int,
    dtype: torch.dtype,
    steps: int,
    block: int | None = None,
) -> float:
    """ms per step of a plain loop `W -= lr * grad` over the step ``path`` (see make_step)."""
    model, X, y = problem(n, d, m, dtype)
    gradient = make_step(path, model, X, y, block)
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
    """ms per step of GDSystem under a Trainer, the first chunk (Trainer start, compilation)
    excluded."""
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
            ms = {
                f: statistics.median(
                    raw_ms(f"compiled-{f}", 100, d, 10_000, dtype, steps) for _ in range(repeats)
                )
                for f in ("streamed", "matmul")
            }
            dt = str(dtype).removeprefix("torch.")
            print(
                f"| {d + 1} | {dt} | {ms['streamed']:.2f} | {ms['matmul']:.2f} "
                f"| {ms['matmul'] / ms['streamed']:.2f} |",
                flush=True,
            )
    print(
        f"\nms per step of the raw loop, medians of {repeats} x {steps} steps; the training path "
        f"picks streamed for p <= {STREAMED_MAX_P} (minnorm.training.gd_step.STREAMED_MAX_P)."
    )


WIDTHS = (1000, 5000, 10_000, 2**14, 2**15, 2**17, 2**19, 2**20)


def one_width(m: int, path: str, block: int | None, repeats: int) -> float:
    """ns per step and neuron of the raw loop over ``path`` at n = 100, p = 6, float64 (best of
    `repeats` runs of ~3 x 10^6 neuron-steps each; this process sees one shape)."""
    steps = max(10, 3_000_000 // m)
    best = min(raw_ms(path, 100, 5, m, torch.float64, steps, block) for _ in range(repeats))
    return best / m * 1e6


def widths(repeats: int, threads: int) -> None:
    """Per-neuron step time against m, each (width, variant) in its own process: the compiled
    formula unblocked and blocked as it runs without the kernel (512 neurons above
    STREAMED_BLOCK_ABOVE_M), and the step as training runs it (``select_step``)."""
    print(
        "| m | compiled, unblocked | compiled, blocked above 2^14 | as trained "
        "| as trained / as trained at m = 10^4 | compiled (blocked) / as trained |"
    )
    print("|---|---|---|---|---|---|")
    results: dict[int, dict[str, float]] = {}
    for m in WIDTHS:
        ns = {}
        blocked = STREAMED_BLOCK if m > STREAMED_BLOCK_ABOVE_M else 0
        for name, path, block in (
            ("unblocked", "compiled-streamed", 0),
            ("blocked", "compiled-streamed", blocked),
            ("trained", "trained", None),
        ):
            if name == "blocked" and not blocked:
                ns[name] = ns["unblocked"]  # the same formula: not blocked at these widths
                continue
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one-width",
                    str(m),
                    "--path",
                    path,
                    "--block",
                    str(block),
                    "--repeats",
                    str(repeats),
                    "--threads",
                    str(threads),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            ns[name] = float(out.split()[-1])
        results[m] = ns
    base = results[10_000]["trained"]
    for m, ns in results.items():
        print(
            f"| {m} | {ns['unblocked']:.1f} | {ns['blocked']:.1f} | {ns['trained']:.1f} "
            f"| {ns['trained'] / base:.2f} | {ns['blocked'] / ns['trained']:.2f} |"
        )
    trained = make_step("trained", *problem(2, 5, 1000, torch.float64)).name
    ratio = results[2**17]["trained"] / base
    verdict = "met" if ratio <= 1.3 else "NOT met"
    print(f"\nns per neuron and step; as trained = {trained} (at m = 1000, {threads} thread(s))")
    print(f"m = 2^17 against m = 10^4, per neuron: {ratio:.2f}x (target <= 1.3x: {verdict})")


def paths_at(m: int, repeats: int) -> dict[str, list[float]]:
    """ms per step of each path of PATHS that runs here, at n = 100, p = 6, float64, width m, in
    this process (one shape), the paths alternating repeat by repeat; ~3 x 10^6 neuron-steps per
    timed run, at least 10 steps. Paths that cannot run here are left out."""
    runnable = [
        path
        for path in PATHS
        if not path.startswith("cpp-")
        or path.removeprefix("cpp-") in streamed_kernel.runnable_isas()
    ]
    steps = max(10, 3_000_000 // m)
    times: dict[str, list[float]] = {path: [] for path in runnable}
    for _ in range(repeats):
        for path in runnable:
            times[path].append(raw_ms(path, 100, 5, m, torch.float64, steps))
    return times


def paths(widths: list[int], repeats: int, threads: int, simdlen: int) -> None:
    """The --paths table: one fresh process per width (see paths_at)."""
    print("| m | path | ms per step | ns per neuron and step | ratio to compiled-streamed |")
    print("|---|---|---|---|---|")
    for m in widths:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--paths-at",
                str(m),
                "--repeats",
                str(repeats),
                "--threads",
                str(threads),
                "--inductor-simdlen",
                str(simdlen),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        med = {k: statistics.median(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}
        base = med["compiled-streamed"]
        blocked = " (blocked)" if m > STREAMED_BLOCK_ABOVE_M else ""
        for path, ms in med.items():
            name = path + (blocked if path == "compiled-streamed" else "")
            print(f"| {m} | {name} | {ms:.3f} | {ms / m * 1e6:.1f} | {ms / base:.2f} |", flush=True)
    print(
        f"\nmedians of {repeats} alternating runs per path; the C++ builds this CPU does not run "
        f"are left out (torch reports {torch.backends.cpu.get_cpu_capability()})"
    )


def main() -> None:
    if "--one-width" in sys.argv or "--paths-at" in sys.argv:  # a child of --widths / --paths
        child = argparse.ArgumentParser()
        child.add_argument("--one-width", type=int)
        child.add_argument("--paths-at", type=int)
        child.add_argument("--path")
        child.add_argument("--block", type=lambda v: None if v == "None" else int(v))
        child.add_argument("--repeats", type=int)
        child.add_argument("--threads", type=int)
        child.add_argument("--inductor-simdlen", type=int, default=0)
        a = child.parse_args()
        retain_freed_memory()
        torch.set_num_threads(a.threads)
        if a.inductor_simdlen:
            from torch._inductor import config as inductor_config

            inductor_config.cpp.simdlen = a.inductor_simdlen
        if a.paths_at:
            print(json.dumps(paths_at(a.paths_at, a.repeats)))
        else:
            print(one_width(a.one_width, a.path, a.block, a.repeats))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--crossover", action="store_true", help="also time both compiled formulas against p"
    )
    parser.add_argument(
        "--widths",
        action="store_true",
        help="only the per-neuron step time against m, one process per width",
    )
    parser.add_argument(
        "--paths",
        action="store_true",
        help="only the step time of every implementation, one process per width",
    )
    parser.add_argument("--path-widths", type=int, nargs="+", default=[10_000, 2**17])
    parser.add_argument(
        "--inductor-simdlen",
        type=int,
        default=0,
        help="--paths: vector width (bits) inductor compiles for; 256 = as on an AVX2 CPU",
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
    torch.set_num_threads(args.threads)
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in lscpu.splitlines()
            if line.startswith("Model name")
        ),
        "?",
    )
    machine = f"{datetime.date.today()}, {cpu}, torch {torch.__version__}, {args.threads} thread(s)"
    if args.widths:
        print(
            f"{machine}, n = 100, p = 6, float64, best of {args.repeats} runs per width, one "
            f"process per width\n"
        )
        widths(args.repeats, args.threads)
        return
    if args.paths:
        simd = f", inductor simdlen {args.inductor_simdlen}" if args.inductor_simdlen else ""
        print(f"{machine}, n = 100, p = 6, float64, one process per width{simd}\n")
        paths(args.path_widths, args.repeats, args.threads, args.inductor_simdlen)
        return
    print(
        f"{machine}, {args.repeats} repeats of {args.steps} steps, n = 100, d = 5 (p = 6), "
        f"m = 10000, {malloc}\n"
    )
    trained = {
        dtype: make_step("trained", *problem(100, 5, 1000, dtype)).name
        for dtype in (torch.float32, torch.float64)
    }
    print(
        "| dtype | fused step | raw eager | system eager | raw fused | system fused "
        "| system eager / raw eager | system fused / raw fused | raw eager / system fused |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for dtype in (torch.float32, torch.float64):
        times: dict[str, list[float]] = {
            k: [] for k in ("raw eager", "system eager", "raw fused", "system fused")
        }
        for _ in range(args.repeats):
            for impl, path in (("eager", "eager"), ("fused", "trained")):
                times[f"raw {impl}"].append(raw_ms(path, 100, 5, 10_000, dtype, args.steps))
                times[f"system {impl}"].append(system_ms(impl, 100, 5, 10_000, dtype, args.steps))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"| {str(dtype).removeprefix('torch.')} | {trained[dtype]} | {med['raw eager']:.2f} "
            f"| {med['system eager']:.2f} | {med['raw fused']:.2f} | {med['system fused']:.2f} "
            f"| {med['system eager'] / med['raw eager']:.2f} "
            f"| {med['system fused'] / med['raw fused']:.2f} "
            f"| {med['raw eager'] / med['system fused']:.2f} |"
        )
    print(
        "\nms per step, medians over repeats; the last column is the fused training path's "
        "speed-up over the eager raw loop (target >= 2)."
    )
    if args.crossover:
        crossover(args.repeats, args.steps)


if __name__ == "__main__":
    main()
