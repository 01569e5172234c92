"""Fixed cost of a training job's process: CPython's default garbage collection, inductor's
instruction-set probes and the way the GD step is loaded, against what a job does now.

Usage: python benchmarks/bench_job_start.py [--repeats 5] [--width 1000] [--seeds 5]

Each sample is a fresh interpreter that does what a training job does before and after its GD
steps: import torch, pytorch_lightning, xarray and minnorm's training modules, build the GD step
for a seed batch (n = 100, p = 6, float64, one thread) and call it once, then exit. Settings:
``default`` (the compiled formula, a load from the compile cache ``.cache/torchinductor``, warmed
here first; neither of the two below), ``gc``
(``minnorm.workflow.pipeline.lighten_garbage_collection``, the first thing every job's script
does), ``gc+probes`` (also ``minnorm.training.compile_cache.remember_isa_probes``, which the
training job calls), ``kernel`` (all that, with the step ``gd_step.select_step`` chooses, the C++
kernel of ``streamed_kernel`` loaded from the cache on a CPU with AVX-512 or AVX2: what a job does
now) and ``kernel-only`` (``kernel`` without the probes' import of inductor, which the kernel does
not need). They alternate, sample by sample; the script prints the median wall time of each (from
the parent: interpreter start to exit), the median of the in-process split (imports; first call),
the step's name, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

JOB = r"""
import json, sys, time
t0 = time.perf_counter()
if sys.argv[1] != "default":
    from minnorm.workflow.pipeline import lighten_garbage_collection
    lighten_garbage_collection()
from minnorm.training.compile_cache import remember_isa_probes, use_compile_cache
use_compile_cache()
import torch, pytorch_lightning, xarray
if sys.argv[1] in ("gc+probes", "kernel"):
    remember_isa_probes()
import minnorm.workflow.pipeline, minnorm.training.train
from minnorm.core.model import TwoLayerReLU
from minnorm.training.gd_step import CompiledStep, select_step
t1 = time.perf_counter()
torch.set_num_threads(1)
m, S = int(sys.argv[2]), int(sys.argv[3])
gen = torch.Generator().manual_seed(0)
X = torch.nn.functional.normalize(torch.randn(100, 5, generator=gen, dtype=torch.float64), dim=1)
y = torch.randn(S, 100, generator=gen, dtype=torch.float64)
model = TwoLayerReLU(torch.randn(S, m, 6, generator=gen, dtype=torch.float64),
                     torch.randint(0, 2, (S, m), generator=gen, dtype=torch.float64) * 2 - 1, True)
if sys.argv[1].startswith("kernel"):
    step = select_step("fused", model, X, y, "half_sum")
else:
    step = CompiledStep(model, X, y, "half_sum")
step.lay_out(model.W)
step(model.W)
t2 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "first_call_s": t2 - t1, "step": step.name}))
"""


def sample(setting: str, width: int, seeds: int) -> dict[str, float]:
    """One fresh interpreter: its wall time from the parent and its own split."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", JOB, setting, str(width), str(seeds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.perf_counter() - start
    split = json.loads(out.strip().splitlines()[-1])
    step = split.pop("step")
    rest = wall - split["imports_s"] - split["first_call_s"]
    return {"wall_s": wall, **split, "rest_s": rest, "step": step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    steps = {}
    for setting in ("gc+probes", "kernel"):  # warms the compile cache (and its probe markers)
        steps[setting] = sample(setting, args.width, args.seeds)["step"]
    results: dict[str, list[dict]] = {
        "default": [],
        "gc": [],
        "gc+probes": [],
        "kernel": [],
        "kernel-only": [],
    }
    for _ in range(args.repeats):
        for setting in results:
            results[setting].append(sample(setting, args.width, args.seeds))
    print(
        f"training job's fixed cost: imports, first call of the cached GD step (m = {args.width}, "
        f"{args.seeds} seeds), exit; median of {args.repeats} fresh interpreters each, "
        f"alternating; the step: {steps['gc+probes']} (default, gc, gc+probes), "
        f"{steps['kernel']} (kernel, kernel-only)\n"
    )
    print(
        "| setting | wall (start to exit) s | imports s | first call s "
        "| interpreter start, exit, rest s |"
    )
    print("|---|---|---|---|---|")
    medians = {}
    for setting, rows in results.items():
        med = {key: statistics.median(row[key] for row in rows) for key in rows[0] if key != "step"}
        medians[setting] = med
        print(
            f"| {setting} | {med['wall_s']:.2f} | {med['imports_s']:.2f} "
            f"| {med['first_call_s']:.2f} | {med['rest_s']:.2f} |"
        )
    base = medians["default"]["wall_s"]
    print()
    for setting in ("gc", "gc+probes", "kernel", "kernel-only"):
        wall = medians[setting]["wall_s"]
        print(f"ratio default / {setting}: {base / wall:.2f}x ({base - wall:.2f} s saved per job)")


if __name__ == "__main__":
    main()
