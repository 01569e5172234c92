"""`make run` removes Snakemake's directory lock only when no snakemake can be working there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO
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


def test_make_run_never_unlocks_a_live_instance(tmp_path, processes):
    """The Makefile's `run` recipe with a stand-in snakemake that records its arguments."""
    workdir = _locked(tmp_path / "wd")
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO / name, workdir / name)
    shutil.copytree(REPO / "config", workdir / "config")  # make run checks config/config.yaml
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    calls = tmp_path / "calls.txt"
    fake = venv / "bin" / "snakemake"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    (venv / ".installed").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}

    def make_run() -> subprocess.CompletedProcess[str]:
        calls.unlink(missing_ok=True)
        return subprocess.run(
            ["make", "run", f"VENV={venv}"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    processes.append(_fake_snakemake(workdir, "snakemake", "-c1"))
    live = make_run()
    assert live.returncode == 0, live.stderr
    assert calls.read_text().splitlines() == ["--cores all"]  # no --unlock
    assert "not removing Snakemake's lock" in live.stderr

    processes[-1].kill()
    processes[-1].wait()
    stale = make_run()
    assert stale.returncode == 0, stale.stderr
    assert calls.read_text().splitlines() == ["--unlock", "--cores all"]


def test_make_run_reports_a_yaml_error_with_its_line_before_snakemake(tmp_path):
    """`make run SNAKEMAKE_ARGS="--configfile bad.yaml"`: file, line and column; no snakemake."""
    workdir = tmp_path / "wd"
    workdir.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO / name, workdir / name)
    shutil.copytree(REPO / "config", workdir / "config")
    (workdir / "bad.yaml").write_text("experiments:\n  mine:\n    sweep: {width: [64, 128}\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    for tool, body in (
        ("python", f'exec "{sys.executable}" "$@"'),
        ("snakemake", f'echo "$@" >> {calls}'),
    ):
        (venv / "bin" / tool).write_text(f"#!/bin/sh\n{body}\n")
        (venv / "bin" / tool).chmod(0o755)
    (venv / ".installed").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.run(
        ["make", "run", f"VENV={venv}", "SNAKEMAKE_ARGS=--configfile bad.yaml"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "bad.yaml:3:" in proc.stderr, proc.stderr
    assert not calls.exists()
