"""The `minnorm` command (minnorm.cli): what each subcommand hands to Snakemake, and its errors.

Snakemake itself is replaced by a recorder (`run_snakemake`); the end-to-end runs of the installed
command are in tests/project/test_wheel.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import minnorm
from helpers import REPO
from minnorm import cli as cli_module
from minnorm.workflow.invocation import REPORT_EXISTING_ENV

TINY = (REPO / ".test" / "config" / "config.yaml").read_text(encoding="utf-8")


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Run in an empty folder; record each Snakemake command line instead of running it."""
    monkeypatch.chdir(tmp_path)
    # setenv first, so that the variable's state before the test is restored afterwards.
    monkeypatch.setenv(REPORT_EXISTING_ENV, "")
    monkeypatch.delenv(REPORT_EXISTING_ENV)
    recorded: list[list[str]] = []

    def record(args):
        recorded.append([*args, f"env:{os.environ.get(REPORT_EXISTING_ENV)}"])
        return 0

    monkeypatch.setattr(cli_module, "run_snakemake", record)
    return recorded


def invoke(*args: str):
    return CliRunner().invoke(cli_module.cli, list(args), catch_exceptions=False)


def test_init_writes_the_configs_and_profiles_and_keeps_existing_files(calls, tmp_path):
    result = invoke("init")
    assert result.exit_code == 0, result.output
    for name in (
        "config/config.yaml",
        "config/tests.yaml",
        "config/README.md",
        "profiles/default/config.v8+.yaml",
        "profiles/slurm/config.v8+.yaml",
    ):
        assert (tmp_path / name).read_bytes() == (REPO / name).read_bytes(), name
    (tmp_path / "config" / "config.yaml").write_text("mine")
    again = invoke("init")
    assert again.exit_code != 0 and "--force" in again.output
    assert (tmp_path / "config" / "config.yaml").read_text() == "mine"
    assert invoke("init", "--force").exit_code == 0
    assert (tmp_path / "config" / "config.yaml").read_bytes() == (
        REPO / "config/config.yaml"
    ).read_bytes()
    assert calls == []


def test_run_in_an_empty_folder_needs_a_config(calls):
    result = invoke("run")
    assert result.exit_code != 0
    assert "no config/config.yaml" in result.output and "minnorm init" in result.output
    assert calls == []


def test_run_hands_the_packaged_workflow_and_the_config_to_snakemake(calls, tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    with pytest.raises(SystemExit) as done:
        cli_module.cli.main(["run", "--configfile", "tiny.yaml", "-n", "--cores", "2"])
    assert done.value.code == 0
    (args,) = calls
    assert args[:2] == ["--snakefile", str(REPO / "Snakefile")]
    assert args[2:] == ["-n", "--cores", "2", "--configfile", "tiny.yaml", "env:None"]


def test_run_reports_a_yaml_mistake_with_its_place_before_snakemake(calls, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("experiments:\n  mine:\n    sweep: {width: [64, 128}\n")
    with pytest.raises(SystemExit) as done:
        cli_module.cli.main(["run", "--configfile", "bad.yaml"])
    assert done.value.code == 1
    assert "bad.yaml:3:" in capsys.readouterr().err
    assert calls == []


def test_report_uses_the_last_run_config_and_reports_what_exists(calls, tmp_path):
    with pytest.raises(SystemExit):
        cli_module.cli.main(["report"])
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "last_run_config.yaml").write_text(TINY)
    with pytest.raises(SystemExit):
        cli_module.cli.main(["report", "--output", "r.html"])
    (tmp_path / "Snakefile").write_text("# a user's workflow\n")
    with pytest.raises(SystemExit):
        cli_module.cli.main(["report", "--snakefile", "Snakefile"])
    first, second, module = calls
    assert REPORT_EXISTING_ENV not in os.environ  # set for the report's Snakemake only
    packaged = str(REPO / "Snakefile")
    assert first == ["--report", "results/report.html", "--snakefile", packaged, "env:1"]
    assert second == [
        "--report",
        "r.html",
        "--snakefile",
        packaged,
        "--configfile",
        "results/last_run_config.yaml",
        "--replace-workflow-config",
        "env:1",
    ]
    # A module user's own Snakefile carries its config: nothing added.
    assert module == ["--report", "results/report.html", "--snakefile", "Snakefile", "env:1"]


def test_archive_without_a_report_says_what_to_do(calls, tmp_path):
    result = invoke("archive", "--directory", str(tmp_path))
    assert result.exit_code != 0
    assert "minnorm report" in result.output
    assert not list(tmp_path.glob("*.zip"))


def test_python_dash_m_minnorm_is_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "minnorm", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == f"minnorm, version {minnorm.__version__}"
    assert Path(minnorm.__file__).parent == REPO / "src" / "minnorm"
