"""Job logs (minnorm.pipeline.log_job_to): the project's own lines and warnings, no library chatter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

JOB = textwrap.dedent(
    """
    import logging, sys, warnings
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from minnorm.pipeline import log_job_to

    log_job_to(sys.argv[1])
    logging.getLogger("minnorm.pipeline").info("own info line")
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
    assert "minnorm.pipeline INFO own info line" in text
    assert "own debug line" not in text
    assert "some.library WARNING library warning" in text
    assert "a python warning" in text
    # The exit message written to stderr after logging was set up still reaches the file.
    assert lines[-1] == "job failed on purpose"
    assert "library info chatter" not in text
    assert "fontTools" not in text and "mathtext" not in text
    assert len(lines) == 4, text
