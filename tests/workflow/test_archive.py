"""`minnorm archive` (minnorm.workflow.archive): what goes into the zip, and its RO-Crate manifest
lists exactly the files it holds."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import minnorm
from minnorm.workflow.archive import ArchiveError, write_archive


def _results(root: Path) -> Path:
    files = {
        "results/report.html": "<html>report</html>",
        "results/last_run_config.yaml": "experiments: {}\n",
        "results/README.md": "written by people",
        "results/checks.csv": "experiment,claim\n",
        "results/checks.md": "| experiment |\n",
        "results/e/e.nc": "collected",
        "results/e/checks.html": "<table></table>",
        "results/e/findings.csv": "finding\n",
        "results/e/runs/m8/s0_p0_lr0.01.nc": "a run",
        "results/e/data/s0_p0.nc": "data",
        "results/e/figures/ss_fig1.png": "png",
        "results/e/logs/collect.log": "log",
        "results/e/other.nc": "not the collected file",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_archive_holds_report_collected_data_tables_config_lock_and_versions(tmp_path):
    root = _results(tmp_path / "study")
    out = write_archive(root, tmp_path / "a.zip")
    with zipfile.ZipFile(out) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        crate = json.loads(archive.read("ro-crate-metadata.json"))
        assert archive.read("results/e/e.nc") == b"collected"
        versions = archive.read("environment.txt").decode()
    held = set(sizes) - {"ro-crate-metadata.json"}
    assert held == {
        "results/report.html",
        "results/last_run_config.yaml",
        "results/checks.csv",
        "results/checks.md",
        "results/e/e.nc",
        "results/e/checks.html",
        "results/e/findings.csv",
        "requirements.lock",
        "environment.txt",
    }
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    assert {k for k, e in graph.items() if e["@type"] == "File"} == held
    assert {part["@id"] for part in graph["./"]["hasPart"]} == held
    assert graph["results/e/e.nc"]["encodingFormat"] == "application/x-netcdf"
    assert int(graph["results/report.html"]["contentSize"]) == sizes["results/report.html"]
    assert graph["./"]["softwareVersion"] == minnorm.__version__
    assert f"minnorm=={minnorm.__version__}" in versions


def test_archive_refuses_a_folder_without_report_or_config_and_writes_nothing(tmp_path):
    root = _results(tmp_path / "study")
    (root / "results" / "report.html").unlink()
    with pytest.raises(ArchiveError, match="minnorm report"):
        write_archive(root, tmp_path / "a.zip")
    (root / "results" / "report.html").write_text("<html></html>")
    (root / "results" / "last_run_config.yaml").unlink()
    with pytest.raises(ArchiveError, match="no run"):
        write_archive(root, tmp_path / "a.zip")
    assert list(tmp_path.glob("a.zip*")) == []


def test_a_report_elsewhere_is_archived_as_the_report(tmp_path):
    root = _results(tmp_path / "study")
    (root / "results" / "report.html").unlink()
    elsewhere = tmp_path / "my_report.html"
    elsewhere.write_text("<html>mine</html>")
    out = write_archive(root, tmp_path / "a.zip", report=elsewhere)
    with zipfile.ZipFile(out) as archive:
        assert archive.read("results/report.html") == b"<html>mine</html>"
