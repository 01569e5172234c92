"""What the run plan costs Snakemake at parse time for a config: the plan calls the rules make
(file lists, job params, resource requests, every width's training jobs), timed as one pass.

The baseline in the same process is `validate_config` of the same config, which every parse
pays first. Run it on two commits (it also runs on 6546b42, before the typed run config, whose
plan returned dicts) on a quiet machine and compare the medians:

    .venv/bin/python benchmarks/bench_plan.py [--repeats 7] [config/beyond.yaml ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from minnorm.config import validate_config
from minnorm.workflow import plan, resource_requests


def _widths(config: dict, exp: str) -> list[int]:
    """The sweep's widths (typed `SweepLists` now, a dict of lists before the typed config)."""
    lists = plan.sweep(config, exp)
    return list(lists["width"] if isinstance(lists, dict) else lists.width)


def plan_pass(config: dict) -> None:
    """The plan calls of one Snakemake parse (workflow/rules/*.smk) and of its jobs' planning."""
    plan.result_files(config)
    for exp in config["experiments"]:
        plan.input_stage_files(config, exp)
        plan.data_job_param(config, exp)
        plan.figure_files(config, exp)
        resource_requests.data_priority(config, exp)
        resource_requests.data_mem_mb(config, exp)
        for width in _widths(config, exp):
            plan.width_run_files(config, exp, width)
            plan.target_files(config, exp, width)
            plan.train_job_param(config, exp, width)
            resource_requests.width_mem_mb(config, exp, width)
            resource_requests.width_runtime_min(config, exp, width)


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, default=[Path("config/config.yaml")])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print("| config | runs | validate (s) | plan pass (s) | plan / validate |")
    print("|---|---|---|---|---|")
    for path in args.configs:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        config = validate_config(raw)
        plan_pass(config)  # imports (torch for the memory estimates) outside the timing
        validate_s = median_seconds(lambda raw=raw: validate_config(raw), args.repeats)
        plan_s = median_seconds(lambda config=config: plan_pass(config), args.repeats)
        runs = sum(len(plan.run_files(config, exp)) for exp in config["experiments"])
        print(f"| {path} | {runs} | {validate_s:.3f} | {plan_s:.3f} | {plan_s / validate_s:.2f} |")


if __name__ == "__main__":
    main()
