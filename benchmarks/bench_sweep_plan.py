"""What a large sweep costs to plan: wall time and peak memory of a real `snakemake -n` on
configs of 10^3, 10^4 (and 10^5) runs, per run (issue 26: a sweep at the 10^5-run cap must plan
within 60 s and 1 GB on 2 cores).

Each size is one experiment of tiny runs (sphere_quadratic, n_train 20, 10 steps) with
`widths` widths x `seeds` seeds, dry-run in a fresh copy of the workflow; the peak is the
resident high-water mark of the Snakemake process (`os.wait4`). The baseline in the same process
is the smallest size: the cost per run should stay flat if planning is linear.

    .venv/bin/python benchmarks/bench_sweep_plan.py [--runs 1000 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def config_of(runs: int) -> dict:
    """One experiment of `runs` tiny runs: 100 widths x runs / 100 seeds (10 widths below 1000)."""
    widths = 100 if runs >= 1000 else 10
    return {
        "experiments": {
            "big": {
                "data": {"name": "sphere_quadratic", "n_train": 20, "n_test": 30, "dim": 3},
                "training": {"steps": 10, "checkpoint_every": 0, "progress_every": 0},
                "sweep": {"width": list(range(8, 8 + widths)), "seed": list(range(runs // widths))},
            }
        }
    }


def dry_run(root: Path, runs: int) -> tuple[float, float, int]:
    """(seconds, peak MB, exit status) of one `snakemake -n` of the `runs`-run config."""
    (root / "big.yaml").write_text(yaml.safe_dump(config_of(runs)), encoding="utf-8")
    args = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", "all"]
    args += ["--configfile", "big.yaml", "--replace-workflow-config"]
    env = {**os.environ, "MINNORM_MAX_RUNS": str(max(runs, 100_000))}
    start = time.perf_counter()
    process = subprocess.Popen(
        args, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        assert process.stderr is not None
        print(process.stderr.read().decode()[-2000:], file=sys.stderr)
    return seconds, usage.ru_maxrss / 1e3, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="*", default=[1000, 10_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(REPO / "Snakefile", root / "Snakefile")
        for folder in ("workflow", "config"):
            shutil.copytree(REPO / folder, root / folder)
        print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, repeats {args.repeats}")
        print("| runs | median s | all s | peak MB | ms per run | KB per run |")
        print("|---|---|---|---|---|---|")
        base = None
        for runs in args.runs:
            results = [dry_run(root, runs) for _ in range(args.repeats)]
            times = [s for s, _, _ in results]
            peak = max(mb for _, mb, _ in results)
            failed = [code for _, _, code in results if code != 0]
            median = statistics.median(times)
            per_run = 1e3 * median / runs
            base = base or per_run
            print(
                f"| {runs} | {median:.1f} | {', '.join(f'{s:.1f}' for s in times)} | {peak:.0f} | "
                f"{per_run:.2f} ({per_run / base:.2f}x the smallest) | {1e3 * peak / runs:.1f} |"
                + (f" FAILED {failed}" if failed else "")
            )


if __name__ == "__main__":
    main()
