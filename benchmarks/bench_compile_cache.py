"""First-call time of the GD step with an empty and with a warm project-local compile cache: the
compiled formula (torch.compile) and the C++ kernel (built with torch.utils.cpp_extension).

Usage: python benchmarks/bench_compile_cache.py [--repeats 3] [--width 10000] [--threads 1]
                                                [--steps compiled kernel]

Each measurement is a fresh interpreter, as a training job is: it points the cache at a folder
with ``minnorm.training.compile_cache.use_compile_cache`` (the call `pipeline.make_run_files`
makes), builds the GD step of a training run (n = 100, p = 6, float64): ``compiled`` the compiled
streamed formula (``gd_step.CompiledStep``), ``kernel`` the C++ kernel of this CPU's build
(``gd_step.KernelStep``), and times the first call (dynamo tracing, inductor and its C++
compilation or cache load; or the kernel's build with ninja or its load) and a later call. "cold"
uses a new empty folder each time; "warm" reuses the folder a cold process filled. The script
also checks that the warm process's gradient equals the cold one's bit for bit, and reads
inductor's counters to show the FX-graph cache hits (0 / 0 for the kernel, which inductor never
sees).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time, hashlib
start = time.perf_counter()
from minnorm.training.compile_cache import use_compile_cache
folder = use_compile_cache(sys.argv[1])
import torch
from torch._dynamo.utils import counters
from minnorm.core.model import TwoLayerReLU
from minnorm.training.gd_step import CompiledStep, KernelStep
torch.set_num_threads(int(sys.argv[3]))
imported = time.perf_counter()
m = int(sys.argv[2])
gen = torch.Generator().manual_seed(0)
X = torch.nn.functional.normalize(torch.randn(100, 5, generator=gen, dtype=torch.float64), dim=1)
y = torch.randn(100, generator=gen, dtype=torch.float64)
W0 = torch.randn(m, 6, generator=gen, dtype=torch.float64)
a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
model = TwoLayerReLU(W0, a, True)
t0 = time.perf_counter()
step = (KernelStep if sys.argv[4] == "kernel" else CompiledStep)(model, X, y, "half_sum")
step.lay_out(model.W)
grad, value = step(model.W)
t1 = time.perf_counter()
step(model.W)
t2 = time.perf_counter()
digest = hashlib.sha256(grad.contiguous().numpy().tobytes()).hexdigest()[:16]
print(json.dumps({"imports_s": imported - start, "first_call_s": t1 - t0, "later_call_s": t2 - t1,
                  "step": step.name, "folder": str(folder),
                  "fxgraph_hits": counters["inductor"]["fxgraph_cache_hit"],
                  "fxgraph_misses": counters["inductor"]["fxgraph_cache_miss"],
                  "aot_autograd_hits": counters["aot_autograd"]["autograd_cache_hit"],
                  "grad_sha256": digest}))
"""


def child(folder: str, width: int, threads: int, step: str) -> dict:
    """One fresh interpreter's timings (see CHILD)."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, folder, str(width), str(threads), step],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--steps", nargs="+", choices=("compiled", "kernel"), default=["compiled", "kernel"]
    )
    args = parser.parse_args()
    import torch

    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
        f"n = 100, p = 6, m = {args.width}, float64, {args.threads} thread(s), {args.repeats} "
        f"cold/warm pairs per step\n"
    )
    print(
        "| step | process | cache | imports (s) | first call (s) | later call (ms) "
        "| FX-graph hits / misses | grad sha256 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for step in args.steps:
        cold, warm = [], []
        for i in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="minnorm-cc-") as folder:
                for kind in ("cold", "warm"):
                    r = child(folder, args.width, args.threads, step)
                    (cold if kind == "cold" else warm).append(r)
                    print(
                        f"| {r['step']} | {i + 1} | {kind} | {r['imports_s']:.2f} "
                        f"| {r['first_call_s']:.2f} | {r['later_call_s'] * 1e3:.2f} "
                        f"| {r['fxgraph_hits']} / {r['fxgraph_misses']} | {r['grad_sha256']} |",
                        flush=True,
                    )
        same = len({r["grad_sha256"] for r in cold + warm}) == 1
        c = statistics.median(r["first_call_s"] for r in cold)
        w = statistics.median(r["first_call_s"] for r in warm)
        summary.append(
            f"{cold[0]['step']}: first call, median: cold {c:.2f} s, warm {w:.2f} s ({c / w:.1f}x "
            f"less, {c - w:.2f} s saved per job); gradients bit for bit equal across all its "
            f"processes: {same}"
        )
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
