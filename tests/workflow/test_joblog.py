"""Job logs (minnorm.workflow.pipeline.log_job_to): the project's own lines and warnings, no library
chatter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import REPO

JOB = textwrap.dedent(
    """
    import logging, sys, warnings
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from minnorm.workflow.pipeline import log_job_to

    log_job_to(sys.argv[1])
    logging.getLogger("minnorm.workflow.pipeline").info("own info line")
    logging.getLogger("minnorm.training.train").debug("own debug line")
    chatty = logging.getLogger("some.library")
    chatty.setLevel(logging.INFO)  # a library that sets its own level
    chatty.info("library info chatter")
    chatty.warning("library warning")
    warnings.warn("a python warning")
    # A real figure job's chatter: the figures' style embeds TrueType subsets in PDFs
    # (pdf.fonttype 42), for which fontTools.subset logs ~150 INFO lines.
    plt.rcParams["pdf.fonttype"] = 42
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0], label=r"$\\|W - W^*\\|^2$")
    ax.set_xlabel(r"$m^{-1/4}$")
    ax.legend()
    fig.savefig(sys.argv[2])
    raise SystemExit("job failed on purpose")
    """
)


def test_job_log_keeps_own_lines_and_warnings_only(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    proc = subprocess.run(
        [sys.executable, "-c", JOB, str(log), str(tmp_path / "fig.pdf")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert (tmp_path / "fig.pdf").stat().st_size > 0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    text = "\n".join(lines)
    assert "minnorm.workflow.pipeline INFO own info line" in text
    assert "own debug line" not in text
    assert "some.library WARNING library warning" in text
    assert "a python warning" in text
    # The exit message written to stderr after logging was set up still reaches the file.
    assert lines[-1] == "job failed on purpose"
    assert "library info chatter" not in text
    assert "fontTools" not in text and "mathtext" not in text
    assert len(lines) == 4, text


FAILING_SNAKEFILE = """
rule all:
    input:
        "out.txt",


rule fails:
    output:
        "out.txt",
    log:
        "logs/fails.log",
    shell:
        "echo 'ValueError: the reason of this failure' > {log}; exit 3"
"""


def test_failed_job_log_appears_in_the_terminal_and_dry_runs_have_no_shell_lines(
    tmp_path: Path,
) -> None:
    """The laptop profile shows a failed job's log (not only its path) and prints no
    `Shell command: None` lines for script jobs."""
    repo = REPO
    (tmp_path / "Snakefile").write_text(FAILING_SNAKEFILE)
    profile = ["--workflow-profile", str(repo / "profiles" / "default"), "--cores", "1"]
    snakemake = [sys.executable, "-m", "snakemake", *profile]
    proc = subprocess.run(snakemake, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "ValueError: the reason of this failure" in proc.stdout + proc.stderr
    dry = subprocess.run(
        [*snakemake, "-n", "--forceall"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Shell command" not in dry.stdout + dry.stderr
    for name in ("default", "slurm"):
        settings = (repo / "profiles" / name / "config.v8+.yaml").read_text()
        assert "show-failed-logs: true" in settings and "printshellcmds" not in settings, name


GC_JOB = textwrap.dedent(
    """
    import gc, json, sys
    from minnorm.workflow.pipeline import JOB_GC_THRESHOLD, log_job_to

    before = gc.get_threshold()
    log_job_to(sys.argv[1])
    after = gc.get_threshold()
    # A reference cycle made after the setting is still found by the collector.
    class Node:
        pass
    node = Node()
    node.self = node
    del node
    found = gc.collect()
    print(json.dumps({"before": before, "after": after, "enabled": gc.isenabled(), "found": found,
                      "limit": JOB_GC_THRESHOLD}))
    """
)


def test_job_processes_collect_garbage_rarely_but_still_collect(tmp_path: Path) -> None:
    """log_job_to raises the young-generation threshold (fewer collector passes during imports)
    and keeps the collector on; the process exits cleanly with the frozen objects."""
    import json

    proc = subprocess.run(
        [sys.executable, "-c", GC_JOB, str(tmp_path / "job.log")],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"][0] < out["limit"] == out["after"][0]
    assert out["after"][1:] == out["before"][1:]
    assert out["enabled"] and out["found"] >= 2  # the cycle: the object and its __dict__
