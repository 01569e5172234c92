"""The wheel is all a user needs: built, installed into a fresh venv and run with no file of the
clone's `src/`, (a) `minnorm run` in an empty folder with figures, the report and the archive,
and (b) a user's Snakefile that uses the installed workflow as a module with `prefix:`, whose
outputs all land below the prefix.

The fresh venv holds only the wheel; the lock's dependencies come from this interpreter's
site-packages, listed in a `.pth` file. Python adds such a folder to `sys.path` without
processing the `.pth` files inside it, so the editable install of the clone (a `.pth` pointing at
`src/`) stays invisible (asserted below). Setting MINNORM_WHEEL_TEST_FULL_INSTALL=1 installs the
lock into the venv instead (`pip install --require-hashes -r requirements.lock`: minutes, and
network or a warm pip cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import minnorm
from helpers import REPO
from helpers.cf import cf_problems

TIMEOUT_S = 600
WORKFLOW_FILES = (  # setup.py's WORKFLOW_FILES, one file of each pattern
    "Snakefile",
    "workflow/Snakefile",
    "workflow/rules/common.smk",
    "workflow/scripts/train_runs.py",
    "workflow/schemas/config.schema.yaml",
    "workflow/report/workflow.rst",
    "workflow/envs/minnorm.yaml",
    "config/config.yaml",
    "config/README.md",
    "profiles/slurm/config.v8+.yaml",
    "requirements.lock",
)
# (b): a user's project that keeps minnorm's experiments as one block of its own config.
USER_SNAKEFILE = """\
from minnorm.workflow.packaged import module_snakefile

configfile: "config/config.yaml"

module minnorm:
    snakefile: module_snakefile()
    config: config["minnorm"]
    prefix: "analysis/minnorm"

use rule * from minnorm as minnorm_*
"""
USER_CONFIG = {
    "project": "a theory group's own study",
    "minnorm": {
        "experiments": {
            "user_digits": {
                "data": {"name": "digits", "n_train": 16, "n_test": 12, "classes": [3, 5]},
                "model": {"bias": False, "kappa": 0.1},
                "training": {
                    "lr": 0.05,
                    "steps": 20,
                    "step_impl": "eager",
                    "dtype": "float32",
                    "record": {"every": 5, "log_points": 0},
                    "checkpoint_every": 10,
                    "progress_every": 0,
                },
                "sweep": {"width": [16, 24], "seed": [3]},
                "figures": ["arora_fig1", "lazy_regime"],
            }
        }
    },
}


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    env: dict[str, str]

    def run(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(args), cwd=cwd, env=self.env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        return proc

    def ok(self, cwd: Path, *args: str) -> str:
        proc = self.run(cwd, *args)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{' '.join(args)}:\n{log[-5000:]}"
        return log


def _site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob(f"minnorm-{minnorm.__version__}-py3-none-any.whl")
    assert len(list(dist.glob(f"minnorm-{minnorm.__version__}.tar.gz"))) == 1

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    if os.environ.get("MINNORM_WHEEL_TEST_FULL_INSTALL") == "1":
        pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
        subprocess.run(
            [*pip, "--require-hashes", "--no-deps", "-r", str(REPO / "requirements.lock")],
            check=True,
            timeout=3600,
        )
    else:
        purelib = Path(
            subprocess.run(
                [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        (purelib / "lock_dependencies.pth").write_text(_site_packages() + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps"]
        + ["--no-index", str(wheel)],
        check=True,
        timeout=TIMEOUT_S,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return Installed(venv, wheel, env)


@pytest.mark.slow
def test_wheel_carries_the_package_and_the_workflow(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(
            f"minnorm-{minnorm.__version__}.dist-info/entry_points.txt"
        ).decode()
    for relative in WORKFLOW_FILES:
        assert f"minnorm/snakemake_workflow/{relative}" in names, relative
    assert "minnorm/cli.py" in names and "minnorm/config/config.schema.yaml" in names
    assert "minnorm = minnorm.cli:main" in entry_points
    # The workflow's files in the wheel are the repository's (the schema link resolved).
    with zipfile.ZipFile(installed.wheel) as wheel:
        for relative in WORKFLOW_FILES:
            packed = wheel.read(f"minnorm/snakemake_workflow/{relative}")
            assert packed == (REPO / relative).read_bytes(), relative


@pytest.mark.slow
def test_installed_package_uses_no_file_of_the_clone(installed, tmp_path):
    probe = (
        "import json, sys, minnorm\n"
        "from minnorm.workflow.packaged import workflow_root\n"
        "print(json.dumps([minnorm.__file__, str(workflow_root()), sys.path]))"
    )
    out = installed.ok(tmp_path, str(installed.venv / "bin" / "python"), "-c", probe)
    package, root, path = json.loads(out.strip().splitlines()[-1])
    assert Path(package).is_relative_to(installed.venv)
    assert Path(root) == Path(package).parent / "snakemake_workflow"
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(REPO / "src")]


@pytest.mark.slow
def test_minnorm_run_report_and_archive_in_an_empty_folder(installed, tmp_path):
    """(a): `minnorm run` on the catalog's tiny config, then `minnorm report` and `archive`."""
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(REPO / ".test" / "config" / "config.yaml", folder / "tiny.yaml")
    minnorm_command = str(installed.venv / "bin" / "minnorm")
    log = installed.ok(folder, minnorm_command, "run", "--configfile", "tiny.yaml", "--cores", "2")
    # The workflow, its profile and its scripts are the wheel's.
    bundle = next(installed.venv.rglob("snakemake_workflow"))
    assert f"profile {bundle}/profiles/default" in log
    tiny = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    ((exp, settings),) = tiny["experiments"].items()
    for figure in settings["figures"]:
        for ext in ("png", "pdf"):
            assert (folder / "results" / exp / "figures" / f"{figure}.{ext}").stat().st_size > 0
    assert (folder / "results" / "checks.csv").is_file()
    # Every kind of netCDF file the workflow wrote passes compliance-checker's cf:1.11.
    results = folder / "results" / exp
    for pattern in ("data/*.nc", "target/*.nc", "runs/*/*.nc", f"{exp}.nc"):
        first = sorted(results.glob(pattern))[0]
        assert cf_problems(first) == [], first

    report_log = installed.ok(folder, minnorm_command, "report")
    assert "--configfile results/last_run_config.yaml --replace-workflow-config" in report_log
    report = folder / "results" / "report.html"
    assert report.stat().st_size > 0 and exp in report.read_text(encoding="utf-8")

    installed.ok(folder, minnorm_command, "archive", "--output", "archive.zip")
    with zipfile.ZipFile(folder / "archive.zip") as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        crate = json.loads(archive.read("ro-crate-metadata.json"))
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    files = {key for key, entity in graph.items() if entity["@type"] == "File"}
    held = set(sizes) - {"ro-crate-metadata.json"}
    assert files == held  # the manifest lists every file the archive holds, and no other
    assert {part["@id"] for part in graph["./"]["hasPart"]} == held
    for name in held:
        assert int(graph[name]["contentSize"]) == sizes[name], name
        assert graph[name]["encodingFormat"] and graph[name]["description"], name
    for needed in (
        "results/report.html",
        f"results/{exp}/{exp}.nc",
        "results/checks.csv",
        f"results/{exp}/checks.md",
        "results/last_run_config.yaml",
        "requirements.lock",
        "environment.txt",
    ):
        assert needed in held, needed
    software = [e for e in graph.values() if e["@type"] == "SoftwareApplication"]
    assert [s["softwareVersion"] for s in software] == [minnorm.__version__]


@pytest.mark.slow
def test_module_with_prefix_puts_every_output_below_the_prefix(installed, tmp_path):
    """(b): a user's Snakefile uses the installed workflow as a module, minnorm's config being
    one block of the user's; everything it writes lands below `analysis/minnorm/`."""
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "Snakefile").write_text(USER_SNAKEFILE)
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(USER_CONFIG))
    python = str(installed.venv / "bin" / "python")
    before = set(project.rglob("*"))
    installed.ok(project, python, "-m", "snakemake", "--cores", "2")
    prefix = project / "analysis" / "minnorm"
    exp = "user_digits"
    for figure in ("arora_fig1", "lazy_regime"):
        assert (prefix / "results" / exp / "figures" / f"{figure}.png").stat().st_size > 0
    for width in (16, 24):
        assert (prefix / "results" / exp / "runs" / f"m{width}" / "s3_p0_lr0.05.nc").is_file()
    recorded = yaml.safe_load((prefix / "results" / "last_run_config.yaml").read_text())
    assert set(recorded["experiments"]) == {exp}  # the rule run_config, not onstart

    installed.ok(
        project,
        str(installed.venv / "bin" / "minnorm"),
        "report",
        "--snakefile",
        "Snakefile",
        "--output",
        "analysis/minnorm/results/report.html",
    )
    assert (prefix / "results" / "report.html").stat().st_size > 0
    status = installed.ok(
        project, str(installed.venv / "bin" / "minnorm"), "status", "--directory", str(prefix)
    )
    assert f"{exp}: 2/2 runs done, collected" in status

    written = {p for p in project.rglob("*") if p.is_file()} - before
    outside = sorted(
        str(p.relative_to(project))
        for p in written
        if not p.is_relative_to(prefix) and not p.is_relative_to(project / ".snakemake")
    )
    assert outside == []
