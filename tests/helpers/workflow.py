"""Shared pieces of the workflow tests: a copy of the workflow, running Snakemake, its job table."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO

TEST_CONFIG = ["--configfile", "config/tests.yaml", "--replace-workflow-config"]
# The tiny config runs in well under a minute on 2 cores; the limit only stops a hung run.
WORKFLOW_TIMEOUT_S = 600


def copy_workflow(root: Path) -> Path:
    """Snakefile, workflow/, config/ and profiles/ in a fresh folder (the package comes from the
    venv)."""
    shutil.copy(REPO / "Snakefile", root / "Snakefile")
    shutil.copytree(REPO / "workflow", root / "workflow")
    shutil.copytree(REPO / "config", root / "config")
    shutil.copytree(REPO / "profiles", root / "profiles")
    return root


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=WORKFLOW_TIMEOUT_S,
        check=False,
    )


def expected_job_counts(config: dict) -> dict[str, int]:
    """Jobs per rule of a complete run from scratch: data (data and target files) per experiment,
    training per (experiment, width), whatever the number of seeds, noise levels and learning
    rates. No target job: the data job writes the targets."""
    counts = {"collect": 0, "checks": 0, "checks_summary": 1, "all": 1}
    for exp, e in config["experiments"].items():
        counts[f"data_{exp}"] = 1
        counts[f"train_{exp}"] = len(e["sweep"]["width"])
        counts["collect"] += 1
        counts["checks"] += 1
        for figure in e["figures"]:
            counts[figure] = counts.get(figure, 0) + 1
    return counts


def job_stats(output: str) -> dict[str, int]:
    """The `Job stats` table of a Snakemake run as rule -> count."""
    table = output[output.index("Job stats:") :]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)
    }
