"""Extending the study is one edit per thing: a new figure, data set and check in a copy of the
repo.

In a temporary copy of the repository's files (tracked or not ignored), this test registers
- a figure: one plot function (src/minnorm/figures/__init__.py), one `FIGURES` entry
  (src/minnorm/config/figure_registry.py) and its caption src/minnorm/figures/captions/<name>.rst,
- a data set: one toy generator and one `DATASETS` entry (src/minnorm/data/registry.py),
- a theorem check: one `CHECKS` entry (src/minnorm/analysis/checks.py),
and runs a tiny config that uses all three through Snakemake with the copy's package
(PYTHONPATH=<copy>/src, same interpreter, nothing installed). The figure, its report entry,
the data file and the check rows must appear, while the schema, the rules, the scripts and
every other module stay byte-identical to the repository's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from helpers import REPO

TIMEOUT_S = 300

FIGURE = '''

def plot_final_loss(collected, out_png, out_pdf):
    """Final training loss of every run against the width (toy figure of tests/project/test_extension.py)."""
    from minnorm.analysis.collect import final_values
    from minnorm.figures.style import figure_style, new_figure, save_figure

    final = final_values(collected["train_loss"]).transpose("width", ...)
    with figure_style():
        fig, (ax,) = new_figure(1)
        for width, values in zip(collected["width"].values, final.values.reshape(final.sizes["width"], -1)):
            ax.scatter([width] * values.size, values)
        ax.set(xlabel="width", ylabel="final training loss", yscale="log")
        save_figure(fig, out_png, out_pdf)
'''

FIGURE_ENTRY = """

FIGURES["final_loss"] = FigureSpec(
    "final_loss", "minnorm.figures:plot_final_loss", "final training loss against width"
)
"""

CAPTION = """Final training loss of every run of experiment ``{{ snakemake.wildcards.exp }}``
against the width (widths {{ snakemake.config["experiments"][snakemake.wildcards.exp].sweep.width }}):
the extension test's figure, caption marker EXTENSION-CAPTION-7f3a.
"""

DATASET = '''

def toy_circle(data):
    """Unit-circle inputs at evenly spaced angles shifted by data.seed, labels y = x_0 (regression)."""
    import torch

    from minnorm.data.datasets import Dataset

    n = data.n_train + data.n_test
    angle = torch.arange(n, dtype=torch.float64) * (2.399963 + 0.1 * data.seed)
    X = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    meta = {"name": "toy_circle", "pm1_labels": False, "n_train": data.n_train,
            "n_test": data.n_test, "dim": 2, "data_seed": data.seed}
    k = data.n_train
    return Dataset(X[:k], X[:k, 0].clone(), X[k:], X[k:, 0].clone(), meta)


DATASETS["toy_circle"] = DatasetSpec("toy_circle", toy_circle, "toy regression on the unit circle", dim=2)
'''

CHECK = """

def _recorded_steps(ds):
    steps = ds.sizes["step"]
    return Outcome(steps, "pass" if steps >= 2 else "fail", f"{steps} recorded steps")


CHECKS["recorded_steps"] = CheckSpec(
    "recorded_steps", DETERMINISTIC, "runs record their trajectory (number of recorded steps)",
    "length of the step coordinate", ">= 2", "every experiment", every_experiment, _recorded_steps)
"""

CONFIG = {
    "experiments": {
        "toy": {
            "data": {"name": "toy_circle", "n_train": 8, "n_test": 6, "seed": 0},
            "model": {"bias": True, "kappa": 1.0},
            "training": {
                "lr": 0.05,
                "steps": 20,
                "record": {"every": 5, "log_points": 0},
                "checkpoint_every": 0,
                "progress_every": 0,
            },
            "sweep": {"width": [16], "seed": [0, 1]},
            "figures": ["final_loss"],
        }
    }
}


def _copy_tracked_files(root: Path) -> None:
    """The working-tree version of every file git tracks or would track (not ignored), symbolic
    links kept as links: the repository as it would be committed now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    for name in listed.stdout.decode().split("\0"):
        source = REPO / name
        if not name or not (source.exists() or source.is_symlink()):
            continue  # deleted in the working tree
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the copy except results, logs and caches: path -> bytes."""
    skip = ("results", ".snakemake", "report.html", "toy.yaml")
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in skip and "__pycache__" not in p.parts
    }


@pytest.mark.slow
def test_new_figure_dataset_and_check_need_one_edit_each(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _copy_tracked_files(root)
    before = _snapshot(root)
    package = root / "src" / "minnorm"
    _append(package / "figures" / "__init__.py", FIGURE)
    _append(package / "config" / "figure_registry.py", FIGURE_ENTRY)
    (package / "figures" / "captions" / "final_loss.rst").write_text(CAPTION, encoding="utf-8")
    _append(package / "data" / "registry.py", DATASET)
    _append(package / "analysis" / "checks.py", CHECK)
    (root / "toy.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    after = _snapshot(root)
    changed = sorted(k for k in after if before.get(k) != after[k])
    assert changed == [
        "src/minnorm/analysis/checks.py",
        "src/minnorm/config/figure_registry.py",
        "src/minnorm/data/registry.py",
        "src/minnorm/figures/__init__.py",
        "src/minnorm/figures/captions/final_loss.rst",
    ]

    # An experiment of another config, run earlier in the same folder, keeps its rows.
    earlier = root / "results" / "earlier" / "checks.csv"
    earlier.parent.mkdir(parents=True)
    earlier_row = (
        "earlier,deterministic,diverged,,no run diverged (number diverged),0.0,,,0,pass,"
        "0 of 4 runs diverged"
    )
    header = "experiment,kind,check,setting,claim,measured,ci_low,ci_high,criterion,verdict,detail"
    earlier.write_text(header + "\n" + earlier_row + "\n")

    flags = ["--configfile", "toy.yaml", "--replace-workflow-config"]
    run = _run(root, "--cores", "2", *flags)
    assert run.returncode == 0, run.stderr[-5000:]

    results = root / "results"
    png, pdf = (
        results / "toy" / "figures" / "final_loss.png",
        results / "toy" / "figures" / "final_loss.pdf",
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    # The package the jobs used is the copy's: the data files hold the toy generator's points.
    with xr.open_dataset(results / "toy" / "data" / "s0_p0.nc") as data:
        assert data.attrs["dataset"] == "toy_circle"
        assert data["X_train"].shape == (8, 2) and data["X_test"].shape == (6, 2)
        assert (abs(data["y_train"] - data["X_train"][:, 0]) < 1e-15).all()
    claim = "runs record their trajectory (number of recorded steps)"
    for table in (results / "toy" / "checks.csv", results / "checks.csv"):
        text = table.read_text(encoding="utf-8")
        row = f"toy,deterministic,recorded_steps,,{claim},5.0,,,>= 2,pass,5 recorded steps"
        assert row in text, text
    assert claim in (results / "checks.html").read_text(encoding="utf-8")
    summary = (results / "checks.csv").read_text(encoding="utf-8").splitlines()
    assert summary[-1] == earlier_row and summary[1].startswith("toy,")  # this config's first

    report = _run(root, "--report", "report.html", *flags)
    assert report.returncode == 0, report.stderr[-5000:]
    html = (root / "report.html").read_text(encoding="utf-8")
    assert "final_loss.png" in html and "EXTENSION-CAPTION-7f3a" in html
    assert claim in html  # the check's row, inside the report page itself
