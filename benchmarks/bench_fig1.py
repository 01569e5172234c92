"""The Figure 1 experiment (ss_fig1) through the workflow against a plain PyTorch float64 loop, in
one invocation.

Usage: python benchmarks/bench_fig1.py [--cores 2] [--steps N] [--seeds K] [--cold-cache]

1. Workflow: `snakemake --cores <cores>` on a config holding only config/config.yaml's `ss_fig1`
   (4 widths x 5 seeds x 10^4 full-batch steps, float64, the first value of any other swept
   setting; `--steps`/`--seeds` shrink it for a quick look), in a temporary working directory
   with the repository's Snakefile: data, targets, training, collection, figures and checks.
   torch.compile's cache is the repository's `.cache/torchinductor` (what `make run` uses; the
   script says whether it already held entries) or, with `--cold-cache`, an empty folder.
2. Plain loop, right after in the same invocation: the same runs (the workflow's own data and
   W0, a from its target files), one after the other in this process, as a user would write it:
   autograd through relu(X~ W^T) a / sqrt(m), half-sum loss, `W -= lr * W.grad`, the training loss
   read every `record.every` steps; one torch thread by default (`--plain-threads`): on these
   shared cores two threads made the loop several times slower, not faster.
3. Workflow again, right after the plain loop, in a fresh working directory (the machine's speed
   drifts over the loop's ten-odd minutes; measured 714-916 s on the same machine on different
   days). The ratio is the plain loop's time over the mean of the two workflow times. (With
   `--cold-cache` the second run finds what the first one compiled.)
4. Breakdown of both workflow runs' time, from measured timers (`minnorm.io.job_clock`: every
   job logs the seconds of its parts, lap by lap from its process's start, and its start and end
   times). Wall time: the timeline from snakemake's launch to its exit, cut where job processes
   start and end: Snakemake's start (until the first job's process starts), periods in which
   jobs of given kinds run, the time between jobs (no job process alive: Snakemake's scheduling
   and job wrappers, interpreter exits) and Snakemake's end; these parts add up to the wall time
   by construction. Job-seconds: each training job's parts (interpreter, imports, reading inputs,
   loading the step, GD steps, the update, recording, checkpoints, Lightning, writing), summed
   over the jobs, against Snakemake's benchmark files (the rest: Snakemake's wrapper and the
   interpreter's exit, outside the job's own clock). The raw step (the step as training runs it,
   for the job's seed batch, in a fresh interpreter, one thread) is printed for comparison.
The final training losses of the two ways are compared (they must agree to rounding).
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = "ss_fig1"

IMPORTS = (
    "import time; t = time.perf_counter(); import torch, pytorch_lightning, xarray; "
    "import minnorm.training.train, minnorm.workflow.pipeline; print(time.perf_counter() - t)"
)

COMPILE = r"""
import json, sys, time
from minnorm.training.compile_cache import use_compile_cache
use_compile_cache(sys.argv[1])
import torch
from minnorm.core.model import TwoLayerReLU
from minnorm.training.gd_step import select_step
from minnorm.training.resources import retain_freed_memory
retain_freed_memory()
torch.set_num_threads(1)
m, steps, S = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
batch = (S,) if S > 1 else ()  # the training job's seed batch (one run: no batch dimension)
gen = torch.Generator().manual_seed(0)
X = torch.nn.functional.normalize(torch.randn(100, 5, generator=gen, dtype=torch.float64), dim=1)
y = torch.randn(*batch, 100, generator=gen, dtype=torch.float64)
signs = torch.randint(0, 2, (*batch, m), generator=gen, dtype=torch.float64) * 2 - 1
model = TwoLayerReLU(torch.randn(*batch, m, 6, generator=gen, dtype=torch.float64), signs, True)
tb = time.perf_counter()
step = select_step("fused", model, X, y, "half_sum")  # as a training job chooses it
step.lay_out(model.W)
W = model.W
t0 = time.perf_counter(); step(W); t1 = time.perf_counter(); step(W); t2 = time.perf_counter()
for _ in range(steps):
    g, _ = step(W)
    with torch.no_grad():
        W.sub_(g, alpha=1e-4)
t3 = time.perf_counter()
print(json.dumps({"compile_s": (t0 - tb) + (t1 - t0) - (t2 - t1), "step_s": (t3 - t2) / steps,
                  "step": step.name}))
"""


def experiment_config(steps: int | None, seeds: int | None) -> dict:
    """config/config.yaml reduced to ss_fig1 (optionally fewer steps or seeds)."""
    full = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config = {k: v for k, v in full.items() if k != "experiments"}
    exp = copy.deepcopy(full["experiments"][EXPERIMENT])
    if steps is not None:
        exp["training"]["steps"] = steps
        exp["training"]["checkpoint_every"] = min(exp["training"].get("checkpoint_every", 0), steps)
        exp["training"]["progress_every"] = min(exp["training"].get("progress_every", 1000), steps)
    if seeds is not None:
        exp["sweep"]["seed"] = exp["sweep"]["seed"][:seeds]
    # One run per (width, seed), as the plain loop trains and as earlier records measured: a
    # swept setting (ss_fig1 draws both label readings) is fixed at its first value.
    for key in [k for k in exp["sweep"] if "." in k]:
        section, name = key.split(".", 1)
        exp.setdefault(section, {})[name] = exp["sweep"].pop(key)[0]
    config["experiments"] = {EXPERIMENT: exp}
    return config


def run_workflow(
    workdir: Path, config_file: Path, cores: int, env: dict
) -> tuple[float, float, float]:
    """Wall seconds of snakemake on the config (the whole `all` target), and its launch and exit
    times (epoch seconds)."""
    cmd = [
        str(REPO / ".venv" / "bin" / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_file),
        "--replace-workflow-config",
        "--cores",
        str(cores),
        "--quiet",
    ]
    launch = time.time()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"snakemake failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return wall, launch, launch + wall


def job_kind(log: Path, results: Path) -> str:
    """The kind of job that wrote a log below results/: training, data and targets, collect,
    figures, checks or checks summary."""
    parts = log.relative_to(results).parts
    if parts[0] == "logs":  # results/logs/checks.log
        return "checks summary"
    name = parts[2]  # <exp>/logs/<name>
    return {"runs": "training", "figures": "figures", "data.log": "data and targets"}.get(
        name, Path(name).stem
    )


def job_clocks(workdir: Path) -> list[tuple[str, str, dict]]:
    """(kind, log name, the job clock's record) of every job that logged one."""
    from minnorm.io.job_clock import SUMMARY_PREFIX

    results = workdir / "results"
    found = []
    for log in sorted(results.rglob("logs/**/*.log")):
        for line in log.read_text().splitlines():
            if SUMMARY_PREFIX in line:
                record = json.loads(line.split(SUMMARY_PREFIX, 1)[1])
                found.append((job_kind(log, results), str(log.relative_to(results)), record))
    return found


def wall_timeline(clocks: list[tuple[str, str, dict]], launch: float, end: float) -> dict:
    """Wall seconds of the workflow by what ran: the timeline from launch to end cut at every job
    process's start and end; each piece goes to the kinds of jobs alive in it (joined with " +
    "), or, with none alive, to Snakemake's start, its end, or the time between jobs."""
    cuts = sorted({launch, end, *(c[2]["start"] for c in clocks), *(c[2]["end"] for c in clocks)})
    cuts = [min(max(t, launch), end) for t in cuts]
    first = min(c[2]["start"] for c in clocks)
    last = max(c[2]["end"] for c in clocks)
    parts: dict[str, float] = defaultdict(float)
    for a, b in zip(cuts, cuts[1:], strict=False):
        mid = (a + b) / 2
        alive = sorted({k for k, _, r in clocks if r["start"] <= mid < r["end"]})
        if alive:
            label = "jobs running: " + " + ".join(alive)
        elif mid < first:
            label = "Snakemake start (parse, DAG, until the first job's process starts)"
        elif mid >= last:
            label = "Snakemake end (after the last job's process)"
        else:
            label = "between jobs (no job process alive: scheduling, job wrappers, exits)"
        parts[label] += b - a
    return dict(parts)


def print_breakdown(title: str, workdir: Path, wall: float, launch: float, end: float) -> None:
    """The measured breakdown of one workflow run (wall timeline; training job-seconds)."""
    clocks = job_clocks(workdir)
    timeline = wall_timeline(clocks, launch, end)
    print(f"\n{title}: wall {wall:.1f} s, measured (job clocks)\n")
    print("| part of the wall time | seconds | share |\n|---|---|---|")
    for label, secs in sorted(timeline.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {secs:.1f} | {secs / wall:.0%} |")
    total = sum(timeline.values())
    print(f"| sum of the parts | {total:.1f} | {total / wall:.0%} |")
    bench = job_seconds(workdir)
    jobs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    count: dict[str, int] = defaultdict(int)
    for kind, _, record in clocks:
        count[kind] += 1
        for part, secs in record["parts"].items():
            jobs[kind][part] += secs
    training = jobs.get("training", {})
    clocked = sum(training.values())
    print(f"\n| training jobs ({count['training']}): part | job-seconds | share |\n|---|---|---|")
    for part, secs in sorted(training.items(), key=lambda kv: -kv[1]):
        if secs >= 0.05:
            print(f"| {part} | {secs:.1f} | {secs / clocked:.0%} |")
    print(f"| sum of the parts (the processes' own clocks) | {clocked:.1f} | |")
    runs = bench.get("runs", 0.0)
    print(
        f"| Snakemake's benchmark files (s) | {runs:.1f} | outside the job clocks: "
        f"{runs - clocked:.1f} ({(runs - clocked) / runs:.0%}) |"
    )
    print(
        "\n| other jobs | count | job-seconds | of which interpreter and imports |"
        "\n|---|---|---|---|"
    )
    for kind, parts in sorted(jobs.items()):
        if kind != "training":
            head = parts.get("interpreter and the script's imports", 0.0)
            print(f"| {kind} | {count[kind]} | {sum(parts.values()):.1f} | {head:.1f} |")


def job_seconds(workdir: Path) -> dict[str, float]:
    """Job-seconds per rule kind from Snakemake's benchmark files (s column)."""
    totals: dict[str, float] = defaultdict(float)
    for tsv in (workdir / "results").rglob("benchmarks/**/*.tsv"):
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        # <exp>/benchmarks/runs/m<width>.tsv, or <exp>/benchmarks/data.tsv (data and targets)
        kind = Path(tsv.relative_to(workdir / "results").parts[2]).stem
        totals[kind] += float(row["s"])
    return dict(totals)


def plain_loop(workdir: Path, exp: dict) -> tuple[float, dict[tuple[int, int], float]]:
    """Seconds for all runs of the plain autograd loop, and each run's final mean-squared training
    loss."""
    import torch
    import xarray as xr

    lr, steps = exp["training"]["lr"], exp["training"]["steps"]
    every = exp["training"]["record"]["every"]
    seed_data = exp["data"]["seed"]
    final: dict[tuple[int, int], float] = {}
    start = time.perf_counter()
    for width in exp["sweep"]["width"]:
        for seed in exp["sweep"]["seed"]:
            base = workdir / "results" / EXPERIMENT
            data = xr.open_dataset(next((base / "data").glob("*.nc")))
            target = xr.open_dataset(next((base / "target").glob(f"m{width}_s{seed}_*.nc")))
            X = torch.tensor(data["X_train"].values)
            Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], 1)
            y = torch.tensor(data["y_train"].values)
            W = torch.tensor(target["W0"].values).requires_grad_(True)
            a = torch.tensor(target["a"].values)
            data.close()
            target.close()
            losses = []
            for k in range(steps + 1):
                f = torch.relu(Xt @ W.T) @ a / math.sqrt(width)
                loss = 0.5 * torch.sum((f - y) ** 2)
                if k % every == 0 or k == steps:
                    losses.append(
                        float(loss.detach()) * 2 / X.shape[0]
                    )  # mean squared error, as the run files
                if k == steps:
                    break
                loss.backward()
                with torch.no_grad():
                    W -= lr * W.grad
                W.grad = None
            final[(width, seed)] = losses[-1]
    del seed_data
    return time.perf_counter() - start, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--steps", type=int, default=None, help="override training.steps (quick look)"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="keep only the first K seeds (quick look)"
    )
    parser.add_argument(
        "--cold-cache", action="store_true", help="an empty torch.compile cache for the workflow"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    parser.add_argument(
        "--plain-threads", type=int, default=1, help="torch threads of the plain loop"
    )
    args = parser.parse_args()
    config = experiment_config(args.steps, args.seeds)
    exp = config["experiments"][EXPERIMENT]
    widths, seeds, steps = exp["sweep"]["width"], exp["sweep"]["seed"], exp["training"]["steps"]
    workdir = Path(tempfile.mkdtemp(prefix="minnorm-fig1-"))
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    from minnorm.training.compile_cache import CACHE_ENV, machine_key

    cache = (
        workdir / ".cache-cold" if args.cold_cache else REPO / ".cache" / "torchinductor"
    ) / machine_key()
    warm_before = any(cache.rglob("*.py")) if cache.exists() else False
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, CACHE_ENV: str(cache)}
    load = os.getloadavg()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")),
        "?",
    )
    import torch

    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {cpu}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    cache_text = "cold (empty)" if args.cold_cache else "repository .cache/torchinductor"
    held = " (held entries before)" if warm_before and not args.cold_cache else " (empty before)"
    print(
        f"{EXPERIMENT}: widths {widths} x seeds {seeds} x {steps} steps, float64; "
        f"snakemake --cores {args.cores}; compile cache {cache_text}{held}\n",
        flush=True,
    )

    wf_before, launch_before, end_before = run_workflow(workdir, config_file, args.cores, env)
    print(f"workflow: {wf_before:.1f} s wall", flush=True)
    torch.set_num_threads(args.plain_threads)
    threads = torch.get_num_threads()
    plain_wall, plain_final = plain_loop(workdir, exp)
    print(
        f"plain PyTorch float64 loop ({threads} torch threads, runs one after another): "
        f"{plain_wall:.1f} s",
        flush=True,
    )
    # The machine's speed drifts over the plain loop's minutes: the workflow runs again right
    # after it (a fresh working directory), and the ratio uses the mean of the two.
    again = Path(tempfile.mkdtemp(prefix="minnorm-fig1-again-"))
    (again / "config.yaml").write_text(config_file.read_text())
    wf_after, launch_after, end_after = run_workflow(again, again / "config.yaml", args.cores, env)
    wf_wall = (wf_before + wf_after) / 2
    print(
        f"workflow again, after the plain loop: {wf_after:.1f} s wall "
        f"(mean of the two: {wf_wall:.1f} s)"
    )
    ratio = plain_wall / wf_wall
    print(
        f"\nratio plain / workflow: {ratio:.2f}x "
        f"(issue 28's target >= 20x: {'met' if ratio >= 20 else 'not met'}); "
        f"workflow under 60 s: {'yes' if wf_wall < 60 else 'no'} ({wf_wall:.1f} s); "
        f"first run / run after the plain loop: {wf_before / wf_after:.2f} "
        f"(target <= 1.3: {'met' if wf_before <= 1.3 * wf_after else 'not met'})"
    )

    import xarray as xr

    worst = 0.0
    for (width, seed), value in plain_final.items():
        run = next((workdir / "results" / EXPERIMENT / "runs" / f"m{width}").glob(f"s{seed}_*.nc"))
        with xr.open_dataset(run) as ds:
            stored = float(ds["train_loss"].values[-1])
        worst = max(worst, abs(stored - value) / abs(stored))
    print(
        f"final training losses, workflow (fused) vs plain loop (autograd): "
        f"max relative difference {worst:.1e}"
    )

    print_breakdown("the first run", workdir, wf_before, launch_before, end_before)
    print_breakdown("the run after the plain loop", again, wf_after, launch_after, end_after)
    shutil.rmtree(again, ignore_errors=True)
    compile_warm = step_s = 0.0
    how = "compiled"
    per_width = []
    for width in widths:
        out = subprocess.run(
            [sys.executable, "-c", COMPILE, str(cache.parent), str(width), "200", str(len(seeds))],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        compile_warm += r["compile_s"]
        how = r["step"]
        step_s += r["step_s"] * steps
        per_width.append(f"m = {width}: {r['step_s'] * 1e3:.2f} ms per step for {len(seeds)} seeds")
    print(
        f"\nraw {how} step, timed alone (fresh interpreter, 1 thread): loading it "
        f"{compile_warm:.1f} s for the {len(widths)} widths; x {steps} steps: {step_s:.1f} s"
    )
    print(f"\nraw {how} step: " + "; ".join(per_width))
    print(f"\nworkdir: {workdir}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
