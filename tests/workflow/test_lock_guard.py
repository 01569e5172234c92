"""`make run` (`minnorm run`) removes Snakemake's directory lock only when no snakemake can be
working there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import REPO
from minnorm import cli as cli_module
from minnorm.workflow.lock_guard import main, snakemake_processes, stale_lock

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")


def _locked(directory: Path) -> Path:
    locks = directory / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("results/x.nc\n")
    return directory


def _fake_snakemake(cwd: Path, *argv: str) -> subprocess.Popen:
    """A process whose command line reads like a snakemake started with `argv` (it only sleeps)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *argv], cwd=cwd)
    # Until the child has exec'd, /proc shows the parent's command line.
    expected = [sys.executable.encode(), b"-c", *(a.encode() for a in argv)]
    deadline = time.monotonic() + 10
    while True:
        shown = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[:-1]
        if shown[:2] == expected[:2] and shown[3:] == expected[2:]:
            return proc
        assert time.monotonic() < deadline, shown
        time.sleep(0.02)


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_live_snakemake_started_with_c1_keeps_the_lock(tmp_path, processes):
    workdir = _locked(tmp_path / "wd")
    other = tmp_path / "elsewhere"
    other.mkdir()
    # Another directory's snakemake is no reason to keep this lock.
    processes.append(_fake_snakemake(other, "snakemake", "-c1"))
    stale, message = stale_lock(workdir)
    assert stale and "removing a stale Snakemake lock" in message

    # `-c1` (no `--cores`), a job of it in a subfolder, `python -m snakemake`: all seen.
    for cwd, argv in [
        (workdir, ("snakemake", "-c1")),
        (workdir / "results", (".snakemake/scripts/tmpab12.train_runs.py",)),
        (workdir, ("-m", "snakemake", "--cores", "2")),
    ]:
        cwd.mkdir(exist_ok=True)
        processes.append(_fake_snakemake(cwd, *argv))
        found = [pid for pid, _ in snakemake_processes(workdir)]
        assert found == [processes[-1].pid]
        stale, message = stale_lock(workdir)
        assert not stale
        assert f"pid {processes[-1].pid}" in message and "--unlock" in message
        processes[-1].kill()
        processes[-1].wait()

    assert stale_lock(workdir)[0]
    # `make run SNAKEMAKE_ARGS="--directory ..."`: the guard checks that directory.
    processes.append(_fake_snakemake(workdir, "snakemake", "-c1"))
    for args in (["--directory", str(workdir)], ["--cores", "2", "-d", str(workdir), "-n"]):
        assert main(args) == 1
    assert main(["--directory", str(other)]) == 1  # not locked
    processes[-1].kill()
    processes[-1].wait()
    assert main(["-c1", "--directory", str(workdir)]) == 0
    shutil.rmtree(workdir / ".snakemake" / "locks")
    assert stale_lock(workdir) == (False, "")


def _minnorm_run(workdir: Path, monkeypatch, *args: str) -> tuple[int, list[list[str]], str]:
    """`minnorm run` (what `make run` calls) in `workdir` with Snakemake replaced by a recorder:
    (exit code, the Snakemake command lines, stderr)."""
    monkeypatch.chdir(workdir)
    calls: list[list[str]] = []
    monkeypatch.setattr(cli_module, "run_snakemake", lambda a: calls.append(list(a)) or 0)
    result = CliRunner().invoke(cli_module.cli, ["run", *args])
    return result.exit_code, calls, result.stderr


def test_make_run_is_minnorm_run():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nrun: venv\n", 1)[1].split("\n\n", 1)[0]
    assert recipe.strip() == "$(BIN)/minnorm run --cores all $(SNAKEMAKE_ARGS)"


def test_minnorm_run_never_unlocks_a_live_instance(tmp_path, processes, monkeypatch):
    workdir = _locked(tmp_path / "wd")
    shutil.copytree(REPO / "config", workdir / "config")  # the run checks config/config.yaml
    snakefile = str(REPO / "Snakefile")

    processes.append(_fake_snakemake(workdir, "snakemake", "-c1"))
    code, calls, err = _minnorm_run(workdir, monkeypatch, "--cores", "all")
    assert code == 0, err
    assert calls == [["--snakefile", snakefile, "--cores", "all"]]  # no --unlock
    assert "not removing Snakemake's lock" in err

    # Another `minnorm run` (Snakemake inside its own process) holds it just the same.
    processes[-1].kill()
    processes[-1].wait()
    processes.append(_fake_snakemake(workdir, str(tmp_path / "venv" / "bin" / "minnorm"), "run"))
    code, calls, err = _minnorm_run(workdir, monkeypatch, "--cores", "all")
    assert calls == [["--snakefile", snakefile, "--cores", "all"]]
    assert "not removing Snakemake's lock" in err

    processes[-1].kill()
    processes[-1].wait()
    code, calls, err = _minnorm_run(workdir, monkeypatch, "--cores", "all")
    assert code == 0, err
    assert calls == [
        ["--snakefile", snakefile, "--cores", "all", "--unlock"],
        ["--snakefile", snakefile, "--cores", "all"],
    ]


def test_minnorm_run_reports_a_yaml_error_with_its_line_before_snakemake(tmp_path, monkeypatch):
    """`make run SNAKEMAKE_ARGS="--configfile bad.yaml"`: file, line and column; no snakemake."""
    workdir = tmp_path / "wd"
    workdir.mkdir()
    shutil.copytree(REPO / "config", workdir / "config")
    (workdir / "bad.yaml").write_text("experiments:\n  mine:\n    sweep: {width: [64, 128}\n")
    code, calls, err = _minnorm_run(workdir, monkeypatch, "--configfile", "bad.yaml")
    assert code != 0
    assert "bad.yaml:3:" in err, err
    assert calls == []
