"""`minnorm status`: how far the workflow run in a directory has got, from its files alone.

Reads the config of the last run (results/last_run_config.yaml, written when a run starts) and
prints, per experiment, how many run files are present out of the sweep's total, how many runs
have a checkpoint (started, not finished), the last line of the most recent training log, and
whether a snakemake process still works in the directory. It reads files only, so it can be
called at any time from another terminal while `minnorm run` is going. Under a module's
`prefix:`, give the prefix as the directory.

    minnorm status [--directory .] [--config results/last_run_config.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from minnorm.workflow import plan
from minnorm.workflow.invocation import LAST_RUN_CONFIG
from minnorm.workflow.lock_guard import PROC, snakemake_processes


def _last_line(path: Path) -> str:
    """The last non-empty line of a text file (its tail only is read)."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 4096))
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "")


def experiment_status(config: dict, exp: str, root: Path) -> dict:
    """{"total", "done", "started", "latest_log", "latest_line"} of experiment `exp` under `root`.

    done: run files present; started: runs without a run file whose checkpoint exists.
    """
    runs = plan.experiment_runs(config, exp)
    paths = [plan.run_paths(exp, run) for run in runs]
    done = sum((root / p.out).is_file() for p in paths)
    started = sum(not (root / p.out).is_file() and (root / p.checkpoint).is_file() for p in paths)
    logs = sorted(
        (root / "results" / exp / "logs" / "runs").glob("m*.log"),
        key=lambda p: p.stat().st_mtime,
    )
    latest = logs[-1] if logs else None
    return {
        "total": len(runs),
        "done": done,
        "started": started,
        "latest_log": latest,
        "latest_line": _last_line(latest) if latest else "",
    }


def singular_targets(config: dict, exp: str, root: Path) -> list[str]:
    """One line per existing target file of `exp` whose G was singular or ill-conditioned (the
    documented pseudo-inverse fallback, `used_pinv`): its path, `cond_G` and the runs trained on
    it. A file that cannot be read yet (being written) is skipped."""
    import netCDF4

    runs_of: dict[str, list[str]] = {}
    for run in plan.experiment_runs(config, exp):
        paths = plan.run_paths(exp, run)
        runs_of.setdefault(paths.target, []).append(Path(paths.out).stem)
    lines = []
    for target, runs in runs_of.items():
        path = root / target
        if not path.is_file():
            continue
        try:
            with netCDF4.Dataset(path) as nc:
                used, cond = int(nc["used_pinv"][...]), float(nc["cond_G"][...])
        except (OSError, KeyError, IndexError, ValueError):
            continue
        if used:
            listed = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
            lines.append(
                f"  warning: G singular or ill-conditioned (cond_G {cond:.3g}), pseudo-inverse "
                f"target: {target}; runs: {listed}"
            )
    return lines


def status_lines(config: dict, root: Path, live: list[tuple[int, str]] | None) -> list[str]:
    """The report `make status` prints (`live`: snakemake processes, None when unknown)."""
    if live is None:
        lines = ["snakemake: cannot tell whether one runs here (no /proc)"]
    elif live:
        lines = [f"snakemake: running here ({', '.join(f'pid {pid}' for pid, _ in live)})"]
    else:
        lines = ["snakemake: not running here"]
    for exp in config["experiments"]:
        s = experiment_status(config, exp, root)
        line = f"{exp}: {s['done']}/{s['total']} runs done"
        if s["started"]:
            line += f", {s['started']} started (checkpoint)"
        collected = root / plan.collected_file(exp)
        line += ", collected" if collected.is_file() else ""
        lines.append(line)
        lines.extend(singular_targets(config, exp, root))
        if s["latest_log"] is not None and s["latest_line"]:
            rel = s["latest_log"].relative_to(root)
            lines.append(f"  {rel}: {s['latest_line'][:160]}")
    checks = root / "results" / "checks.md"
    lines.append(f"checks table: {'results/checks.md' if checks.is_file() else 'not yet'}")
    return lines


def print_status(root: Path, config_path: Path | None = None) -> int:
    """Print the status of the run in `root` (config: `config_path`, default the last run's);
    0, or 1 when no run has started there yet. `minnorm status` and `make status` call this."""
    root = root.resolve()
    config_path = config_path or root / LAST_RUN_CONFIG
    if not config_path.is_file():
        print(
            f"minnorm status: no {config_path}: no run has started in {root} yet "
            f"(a run writes it when it starts)",
            file=sys.stderr,
        )
        return 1
    with open(config_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    live = snakemake_processes(root) if PROC.is_dir() else None
    print("\n".join(status_lines(config, root, live)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", type=Path, default=Path.cwd())
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"the run's config (default: DIRECTORY/{LAST_RUN_CONFIG})",
    )
    args = parser.parse_args(argv)
    return print_status(args.directory, args.config)


if __name__ == "__main__":
    sys.exit(main())
