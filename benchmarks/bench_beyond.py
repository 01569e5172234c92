"""What `make beyond` costs on an idle machine, from the jobs' own Snakemake benchmark files.

The studies take long enough that they are timed once, as they run, rather than repeated: every
target and training job writes `results/<exp>/benchmarks/{target,runs}/m<width>.tsv` with its
wall time (`s`) and the CPU time its processes used (`cpu_time`). CPU time does not grow when
other work shares the machine, so from it this script gives the wall time the studies need on an
idle machine with `--cores N`: at least the summed CPU time / N (every core busy all the time)
and at least the longest job (one job runs on one core). Data, collect, check and figure jobs
write no benchmark file; their start-up (a few seconds each) is not counted.

    .venv/bin/python benchmarks/bench_beyond.py [--cores 2] [experiment ...]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

STUDIES = ("rate_tightness", "gd_vs_flow", "lazy_phase", "fig1_variants")


def job_times(exp: str, results: Path = Path("results")) -> list[tuple[str, float, float]]:
    """(job, wall s, cpu s) of every benchmarked job of `exp`."""
    out = []
    for path in sorted((results / exp / "benchmarks").glob("*/m*.tsv")):
        with open(path, encoding="utf-8") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        out.append((f"{path.parent.name}/{path.stem}", float(row["s"]), float(row["cpu_time"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", default=list(STUDIES))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    total_cpu, longest = 0.0, ("", 0.0)
    print("| experiment | jobs | summed wall (s) | summed CPU (s) | longest job (CPU s) |")
    print("|---|---|---|---|---|")
    for exp in args.experiments:
        times = job_times(exp)
        if not times:
            raise SystemExit(f"no benchmark files under results/{exp}/benchmarks: run it first")
        cpu = sum(t[2] for t in times)
        job = max(times, key=lambda t: t[2])
        total_cpu += cpu
        longest = max(longest, (f"{exp} {job[0]}", job[2]), key=lambda t: t[1])
        print(
            f"| {exp} | {len(times)} | {sum(t[1] for t in times):.0f} | {cpu:.0f} | "
            f"{job[2]:.0f} ({job[0]}) |"
        )
    bound = max(total_cpu / args.cores, longest[1])
    print(
        f"\nsummed CPU {total_cpu:.0f} s; longest job {longest[1]:.0f} s ({longest[0]}); "
        f"idle-machine wall time with {args.cores} cores >= {bound:.0f} s = {bound / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
