"""How the workflow is invoked: the merged-configfile warning, the last run's config, `make
report`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from minnorm.config import validate_config
from minnorm.workflow.invocation import (
    REPORT_EXISTING_ENV,
    config_digest,
    existing_targets,
    merged_configfile_warning,
    merged_origin_note,
    results_folder_problem,
    write_last_run_config,
)

DEFAULTS = ["ss_fig1", "width_scaling", "arora_fig2"]


def _yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_merged_configfile_warning_names_the_default_experiments(tmp_path):
    mine = _yaml(tmp_path / "my.yaml", {"experiments": {"mine": {}}})
    message = merged_configfile_warning([mine], False, [*DEFAULTS, "mine"])
    assert message is not None
    assert "the default experiments ss_fig1, width_scaling, arora_fig2 run too" in message
    assert "--replace-workflow-config" in message and str(mine) in message
    # Replaced, no --configfile, or a file that redefines every experiment: nothing to say.
    assert merged_configfile_warning([mine], True, ["mine"]) is None
    assert merged_configfile_warning([], False, DEFAULTS) is None
    overrides = _yaml(tmp_path / "steps.yaml", {"experiments": {e: {} for e in DEFAULTS}})
    assert merged_configfile_warning([overrides], False, DEFAULTS) is None
    # The default file itself given with --configfile.
    default = _yaml(tmp_path / "config.yaml", {"experiments": {"mine": {}}})
    assert merged_configfile_warning([default], False, DEFAULTS, default_file=default) is None


def test_last_run_config_reads_back_to_the_same_validated_config(tmp_path):
    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        config = validate_config(yaml.safe_load(handle))
    path = write_last_run_config(config, tmp_path / "results" / "last_run_config.yaml")
    again = yaml.safe_load(path.read_text())
    assert again == config
    assert validate_config(again) == config


def test_existing_targets_only_under_make_report(tmp_path):
    (tmp_path / "made.png").write_text("x")
    targets = [str(tmp_path / "made.png"), str(tmp_path / "missing.png")]
    assert existing_targets(targets, environ={}) == targets
    assert existing_targets(targets, environ={REPORT_EXISTING_ENV: "1"}) == targets[:1]
    # Below a module's prefix: the targets keep their names, existence is checked where they lie.
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "made.png").write_text("x")
    names = ["made.png", "missing.png"]
    moved = existing_targets(
        names, environ={REPORT_EXISTING_ENV: "1"}, where=lambda t: str(tmp_path / "p" / t)
    )
    assert moved == ["made.png"]
    # A report with nothing to show is refused (an empty report would look like a result).
    with pytest.raises(ValueError, match="no results to report: none of the 2 files"):
        existing_targets(names, environ={REPORT_EXISTING_ENV: "1"}, where=lambda t: t + ".no")


def _fake_venv(venv: Path) -> Path:
    """A venv folder whose tools run this interpreter (for `make` in a copy)."""
    (venv / "bin").mkdir(parents=True)
    for tool, command in (
        ("python", ""),
        ("snakemake", " -m snakemake"),
        ("minnorm", " -m minnorm"),
    ):
        (venv / "bin" / tool).write_text(f'#!/bin/sh\nexec "{sys.executable}"{command} "$@"\n')
        (venv / "bin" / tool).chmod(0o755)
    (venv / ".installed").touch()
    return venv


@pytest.mark.slow
def test_make_report_before_any_run_says_so_and_fails(tmp_path):
    root = _copy_repo(tmp_path / "wf")
    venv = _fake_venv(tmp_path / "venv")
    report = subprocess.run(
        ["make", "report", f"VENV={venv}"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )
    log = report.stdout + report.stderr
    assert report.returncode != 0, log[-3000:]
    assert "no results to report: none of the" in log and "run the workflow first" in log, log
    assert "Traceback" not in log
    assert not (root / "results" / "report.html").exists()


def test_config_digest_follows_the_values_not_the_key_order():
    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        config = validate_config(yaml.safe_load(handle))
    reordered = dict(reversed(list(config["experiments"].items())))
    assert config_digest({"experiments": reordered}) == config_digest(config)
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["experiments"]["tiny_sphere"]["training"]["steps"] += 1
    assert config_digest(changed) != config_digest(config)
    assert len(config_digest(config)) == 16


def _copy_repo(dest: Path) -> Path:
    """What a clone holds for running the workflow and the Makefile (the package: this venv)."""
    dest.mkdir()
    for name in ("Snakefile", "Makefile", "pyproject.toml", "setup.py", "requirements.lock"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", ".snakemake")
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore, symlinks=True)
    return dest


def _snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_dry_run_warns_when_a_configfile_is_merged(tmp_path):
    root = _copy_repo(tmp_path / "wf")
    merged = _snakemake(root, "-n", "--configfile", "config/tests.yaml")
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert "the default experiments ss_fig1, width_scaling, arora_fig2 run too" in merged.stderr
    replaced = _snakemake(
        root, "-n", "--configfile", "config/tests.yaml", "--replace-workflow-config"
    )
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert "minnorm: --configfile" not in replaced.stdout + replaced.stderr


@pytest.mark.slow
def test_make_report_after_a_partial_run_of_another_config(tmp_path):
    """`make report` (`minnorm report`) after `snakemake --configfile tests.yaml
    --replace-workflow-config results/tiny_digits/tiny_digits.nc` (one experiment's collected
    file, no figures): no flags repeated, the report covers what exists, no "Missing metadata"
    warning."""
    root = _copy_repo(tmp_path / "wf")
    run = _snakemake(
        root,
        "--cores",
        "2",
        "--configfile",
        "config/tests.yaml",
        "--replace-workflow-config",
        "results/tiny_digits/tiny_digits.nc",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    recorded = yaml.safe_load((root / "results" / "last_run_config.yaml").read_text())
    assert set(recorded["experiments"]) == set(
        yaml.safe_load((REPO / "config" / "tests.yaml").read_text())["experiments"]
    )
    assert not list(root.glob("results/*/figures/*.png"))  # a partial run: no figures yet

    # `make report` with this interpreter's venv standing in for .venv (already installed).
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool, command in (
        ("python", ""),
        ("snakemake", " -m snakemake"),
        ("minnorm", " -m minnorm"),
    ):
        (venv / "bin" / tool).write_text(f'#!/bin/sh\nexec "{sys.executable}"{command} "$@"\n')
        (venv / "bin" / tool).chmod(0o755)
    (venv / ".installed").touch()
    report = subprocess.run(
        ["make", "report", f"VENV={venv}"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )
    log = report.stdout + report.stderr
    assert report.returncode == 0, log[-3000:]
    assert (root / "results" / "report.html").stat().st_size > 0
    assert "Missing metadata" not in log
    assert "--configfile results/last_run_config.yaml --replace-workflow-config" in log


@pytest.mark.slow
def test_module_without_prefix_plans_the_outputs_and_records_its_config(tmp_path):
    """The clone's workflow as a module without `prefix:` (and with renamed rules): the outputs
    are the plain results/ paths, and the rule run_config records the config (a module's onstart
    does not run)."""
    (tmp_path / "Snakefile").write_text(
        "from minnorm.workflow.packaged import module_snakefile\n\n"
        "module minnorm:\n"
        "    snakefile: module_snakefile()\n"
        "    config: config\n\n"
        "use rule * from minnorm as mine_*\n"
    )
    config = tmp_path / "tiny.yaml"
    config.write_text((REPO / ".test" / "config" / "config.yaml").read_text())
    dry = _snakemake(tmp_path, "-n", "--configfile", str(config), "--cores", "1")
    assert dry.returncode == 0, dry.stderr[-3000:]
    log = dry.stdout + dry.stderr
    assert "rule mine_run_config:" in log and "output: results/last_run_config.yaml" in log
    assert "rule mine_train_catalog_tiny:" in log
    assert "results/catalog_tiny/figures/ss_fig1.png" in log
    assert not (tmp_path / "results").exists()


def test_results_folder_that_cannot_hold_files_gets_one_line_naming_it(tmp_path, monkeypatch):
    results = tmp_path / "results"
    assert results_folder_problem(results) is None  # absent: the run makes it
    results.symlink_to(tmp_path / "unmounted")
    assert results_folder_problem(results) == (
        f"{results}: a symbolic link to {tmp_path / 'unmounted'}, which does not exist; create "
        "that folder (e.g. mount the disk) or remove the link"
    )
    results.unlink()
    results.write_text("a file")
    assert "exists but is not a folder" in str(results_folder_problem(results))
    results.unlink()
    results.mkdir()
    assert results_folder_problem(results) is None
    # Read-only (faked: a root user may write anywhere); a dry run writes nothing.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert results_folder_problem(results) == (
        f"{results}: folder is read-only for this user; make it writable or run elsewhere"
    )
    assert results_folder_problem(results, write=False) is None


NOBODY = 65534


def _as_nobody(*args: str) -> list[str]:
    """`args` run as the unprivileged user 65534 (no groups), or a pytest skip saying why not."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user (as this user, os.access is the real check)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import snakemake, minnorm"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"user {NOBODY} cannot run this venv's Python: {probe.stderr[-300:]}")
    return [*prefix, *args]


@pytest.mark.slow
def test_read_only_results_stops_a_real_run_with_one_line():
    # As root os.access always passes, so the real check runs as an unprivileged user: it owns
    # the working folder (Snakemake's metadata goes there) but not results/, which is 0755 root.
    command = _as_nobody(
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "1",
        "--configfile",
        "config/tests.yaml",
        "--replace-workflow-config",
    )
    top = Path(tempfile.mkdtemp(prefix="minnorm-readonly-"))  # pytest's tmp is root-only
    try:
        os.chmod(top, 0o755)
        root = _copy_repo(top / "wf")
        for folder, _, names in os.walk(root):
            for name in [folder, *(os.path.join(folder, n) for n in names)]:
                os.chown(name, NOBODY, NOBODY)
        results = root / "results"
        results.mkdir(mode=0o755)
        environ = {**os.environ, "HOME": str(root), "XDG_CACHE_HOME": str(root / ".cache")}
        result = subprocess.run(
            command, cwd=root, env=environ, capture_output=True, text=True, check=False
        )
        log = result.stdout + result.stderr
        assert result.returncode != 0, log[-3000:]
        assert (
            "results: folder is read-only for this user; make it writable or run elsewhere" in log
        ), log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert list(results.iterdir()) == []
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.slow
def test_dangling_results_link_stops_snakemake_with_one_line(tmp_path):
    root = _copy_repo(tmp_path / "wf")
    (root / "results").symlink_to(tmp_path / "unmounted")
    result = _snakemake(
        root, "--cores", "1", "--configfile", "config/tests.yaml", "--replace-workflow-config"
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"results: a symbolic link to {tmp_path / 'unmounted'}, which does not exist" in log
    assert "Traceback" not in log and not (tmp_path / "unmounted").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "line"),
    [
        (
            "results/tiny_digits/figures/ss_fig1.png",
            "results/tiny_digits/figures/ss_fig1: figure ss_fig1 is not in "
            "experiments.tiny_digits.figures (experiments that list it: tiny_sphere)",
        ),
        (
            "results/tiny_sphere/figures/gd_vs_flow.pdf",
            "figure gd_vs_flow is not in experiments.tiny_sphere.figures (experiments that "
            "list it: tiny_beyond)",
        ),
        (
            "results/nope/checks.csv",
            "results/nope/: the config has no experiment 'nope' (experiments: tiny_sphere, "
            "tiny_digits, tiny_beyond)",
        ),
    ],
)
def test_unlisted_figure_or_unknown_experiment_target_gets_one_line(tmp_path, target, line):
    root = _copy_repo(tmp_path / "wf")
    result = _snakemake(
        root,
        "-n",
        "--cores",
        "1",
        "--configfile",
        "config/tests.yaml",
        "--replace-workflow-config",
        target,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert line in log, log[-3000:]
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def test_merge_error_names_only_the_keys_and_file_the_user_wrote(tmp_path):
    default = tmp_path / "default.yaml"
    default.write_text(
        "experiments:\n  a:\n    training: {steps: 10}\n    sweep: {model.kappa: [1.0]}\n"
        "  b:\n    training: {lr: 2.0}\n"
    )
    mine = tmp_path / "mine.yaml"
    mine.write_text("experiments:\n  a:\n    training: {horizon: 1.0}\n    model: {kappa: 0}\n")
    horizon = (
        "experiments.a.training.horizon: sets the steps of each run; remove training.steps or "
        "the horizon"
    )
    kappa = "experiments.a.model.kappa: must be > 0"
    theirs = "experiments.b.training.lr: too large"
    message = f"invalid config:\n{horizon}\n{kappa}\n{theirs}"
    noted = merged_origin_note(message, [mine, default], default_file=default)
    assert noted.splitlines() == [
        "invalid config:",
        f"experiments.a.training.horizon (in {mine}): does not fit the settings of "
        f"experiments.a that Snakemake merged {mine} into from the workflow's default config; "
        "add --replace-workflow-config to use it alone",
        kappa,
        f"and 1 problem in the settings of the workflow's default config that Snakemake merged "
        f"{mine} into; add --replace-workflow-config to use it alone",
    ]
    # Neither the default's keys nor its file are named.
    assert "steps" not in noted and "experiments.b" not in noted and str(default) not in noted
    # Keys the user wrote alone: the message is unchanged.
    assert merged_origin_note(f"invalid config:\n{kappa}", [mine], default) == (
        f"invalid config:\n{kappa}"
    )


@pytest.mark.slow
def test_snakemake_merge_error_names_only_what_the_user_wrote(tmp_path):
    root = _copy_repo(tmp_path / "wf")
    (root / "mine.yaml").write_text(
        "experiments:\n  ss_fig1:\n    training: {horizon: 1.0}\n"
        "    sweep: {width: [8, 16], seed: [0]}\n"
    )
    result = _snakemake(root, "-n", "--cores", "1", "--configfile", "mine.yaml")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "experiments.ss_fig1.training.horizon (in mine.yaml): does not fit the settings of "
        "experiments.ss_fig1 that Snakemake merged mine.yaml into from the workflow's default "
        "config; add --replace-workflow-config to use it alone"
    ) in log, log[-3000:]
    # (Snakemake's own first line says that config/config.yaml is extended.)
    error = log[log.index("invalid config:") :]
    assert "training.steps" not in error and "config/config.yaml" not in error, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


# The config classes of issue 26, each stopped by a real `snakemake -n` at parse time with the
# lines its file expects (tests/configs/bad/: `# expect:`), no traceback, well within 60 s.
ISSUE_26_BAD_FILES = (
    "horizon-steps-unbounded",
    "horizon-below-one-step",
    "horizon-swept-below-one-step",
    "horizon-swept-with-steps",
    "horizon-and-steps-swept",
    "steps-and-horizon",
    "kappa-underflow-float32",
    "kappa-overflow-float32",
    "kappa-overflow-swept",
    "gd-vs-flow-without-horizon",
    "sweep-accelerator",
    "sweep-step-impl",
    "sweep-checkpoint-every",
    "sweep-too-many-runs",
    "path-without-files",
    "width-beyond-int32",
)


@pytest.mark.slow
def test_issue_26_config_classes_are_stopped_by_a_real_dry_run(tmp_path):
    root = _copy_repo(tmp_path / "wf")
    bad = REPO / "tests" / "configs" / "bad"
    started = {}
    for name in ISSUE_26_BAD_FILES:
        args = [sys.executable, "-m", "snakemake", "-n", "--cores", "1"]
        args += ["--configfile", str(bad / f"{name}.yaml"), "--replace-workflow-config"]
        started[name] = subprocess.Popen(
            args, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if len([p for p in started.values() if p.poll() is None]) >= 2:  # two cores
            next(iter(p for p in started.values() if p.poll() is None)).wait()
    for name, process in started.items():
        log, _ = process.communicate(timeout=120)
        assert process.returncode != 0, (name, log[-2000:])
        text = (bad / f"{name}.yaml").read_text(encoding="utf-8")
        expected = [
            line.split("# expect:", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("# expect:")
        ]
        assert expected, name
        for line in expected:
            assert line in log, (name, line, log[-2000:])
        assert "Traceback" not in log, (name, log[-2000:])
