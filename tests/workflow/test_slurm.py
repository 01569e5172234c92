"""Cluster execution: profiles/slurm planned without SLURM and run on a live SLURM.

The live tests need a reachable SLURM controller, e.g. the single-node one that
tests/slurm/start_local_slurm.sh stands up (as root); they skip with the reason otherwise.
They use the profile exactly as a user would: a copy with its two EDIT lines filled in, plus
test-only flags for a cluster without an accounting database (see `TEST_ONLY_FLAGS`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from helpers import REPO

PROFILE_FILE = REPO / "profiles" / "slurm" / "config.v8+.yaml"

# Test-only executor flags. Without an accounting database `sacct` fails and the plugin's
# default (sacct) status check never sees the jobs finish, so status comes from `squeue`
# (finished jobs stay visible for MinJobAge=300 s in the local slurm.conf). The first status
# check waits 40 s by default; 2 s keeps the test short.
TEST_ONLY_FLAGS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
]
# Account for the local test cluster: it has no accounting, so any name is accepted.
TEST_ACCOUNT = os.environ.get("MINNORM_SLURM_ACCOUNT", "minnorm-ci")

# Run-file content that legitimately differs between two runs of the same config: the
# measured wall time, and the provenance of the code (git commit, hash of the package
# sources), which changes when the checkout is edited between the local and the SLURM run.
VARIABLES_THAT_MAY_DIFFER = ("wall_time_s",)
ATTRS_THAT_MAY_DIFFER = ("git_commit", "code_sha256")

# The README's SLURM command line without targets (see profiles/slurm/config.v8+.yaml).
README_FLAGS = ["--workflow-profile", "none"]

SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")

# A throwaway workflow: three small jobs of group "train" (to bundle) and one job that fails
# on its first attempt only.
THROWAWAY_SNAKEFILE = """
rule all:
    input:
        expand("out/part{i}.txt", i=range(3)),
        "out/flaky.txt",


rule part:
    output:
        "out/part{i}.txt",
    group:
        "train"
    threads: 1
    resources:
        mem_mb=100,
        runtime=2,
    shell:
        "echo $SLURM_JOB_ID > {output}"


rule flaky:
    output:
        "out/flaky.txt",
    resources:
        mem_mb=100,
        runtime=2,
        attempt=lambda wildcards, attempt: attempt,
    shell:
        "echo flaky attempt {resources.attempt} in SLURM job $SLURM_JOB_ID; "
        "if [ {resources.attempt} -eq 1 ]; then echo failing on purpose; exit 3; fi; "
        "echo $SLURM_JOB_ID > {output}"
"""


def slurm_cluster() -> tuple[dict | None, str]:
    """({"partition": default partition} of a reachable SLURM, "") or (None, why not)."""
    if shutil.which("sinfo") is None:
        return None, (
            "no SLURM: `sinfo` not found (as root, tests/slurm/start_local_slurm.sh "
            "installs and starts a single-node SLURM)"
        )
    proc = subprocess.run(
        ["timeout", "-k", "2", "15", "sinfo", "--noheader", "--format", "%P|%a"],
        capture_output=True,
        text=True,
    )
    rows = [line.split("|") for line in proc.stdout.split()]  # partition|availability
    if proc.returncode != 0 or not rows:
        reason = (proc.stderr.strip().splitlines() or ["no partitions"])[-1]
        return None, f"SLURM controller not reachable (sinfo: {reason})"
    up = [row for row in rows if row[1] == "up"]
    if not up:
        return None, "SLURM reachable but no partition is up"
    default = [row for row in up if row[0].endswith("*")]
    name = (default or up)[0][0].rstrip("*")
    return {"partition": os.environ.get("MINNORM_SLURM_PARTITION", name)}, ""


@pytest.fixture(scope="module")
def cluster() -> dict:
    found, reason = slurm_cluster()
    if found is None:
        pytest.skip(reason)
    return found


def adapt_profile(dest: Path, *, partition: str, account: str) -> Path:
    """Copy profiles/slurm into `dest` with its two EDIT lines filled in, as a user would."""
    text = PROFILE_FILE.read_text()
    for key, value in (("slurm_partition", partition), ("slurm_account", account)):
        text, count = re.subn(rf'^(\s*{key}:\s*)"<your_\w+>"', rf'\g<1>"{value}"', text, flags=re.M)
        assert count == 1, f"profile must have exactly one placeholder line for {key}"
    dest.mkdir(parents=True)
    (dest / PROFILE_FILE.name).write_text(text)
    return dest


def run_snakemake(
    args: list[str], cwd: Path, *, timeout_s: int, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake under `timeout -k`, so a hang fails the test instead of stalling CI."""
    timeout = shutil.which("timeout") or "timeout"
    command = [timeout, "-k", "10", str(timeout_s), sys.executable, "-m", "snakemake"]
    return subprocess.run(
        command + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def assert_ok(proc: subprocess.CompletedProcess, what: str) -> str:
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{log[-6000:]}"
    return log


def copy_workflow(dest: Path) -> Path:
    """The workflow part of the repository (the library is imported from the install)."""
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    ignore = shutil.ignore_patterns("__pycache__", ".snakemake")
    # profiles/: the laptop profile profiles/default is there as in a clone, and is what the
    # README's `--workflow-profile none` keeps out.
    for folder in ("config", "workflow", "profiles"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)
    return dest


def copy_workflow_with_tiny_config(dest: Path) -> Path:
    """The workflow with config/tests.yaml's paper experiments as its config/config.yaml.

    The tiny config replaces the default one on disk rather than through `--configfile ...
    --replace-workflow-config`: Snakemake 9 does not pass that flag on to cluster jobs, which
    would then see the default experiments merged into the tiny ones. The studies' tiny_beyond
    is left out: what SLURM changes (submission, bundling, retries) does not depend on the
    experiment, and test_workflow.py runs it.
    """
    copy_workflow(dest)
    config = yaml.safe_load((REPO / "config" / "tests.yaml").read_text())
    config["experiments"].pop("tiny_beyond")
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def env_without_slurm(tmp_path: Path) -> dict:
    """An environment whose PATH has the interpreter and the tools Snakemake needs, no SLURM."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "which"):
        (tools / tool).symlink_to(shutil.which(tool))
    path = f"{Path(sys.executable).parent}{os.pathsep}{tools}"
    assert shutil.which("sinfo", path=path) is None
    assert shutil.which("sbatch", path=path) is None
    return {"PATH": path, "HOME": str(tmp_path)}


def test_dry_run_needs_no_slurm(tmp_path):
    """`snakemake --profile profiles/slurm -n` plans on a machine without any SLURM tool."""
    (tmp_path / "Snakefile").write_text(THROWAWAY_SNAKEFILE)
    proc = run_snakemake(
        ["--profile", str(PROFILE_FILE.parent), "-n"],
        tmp_path,
        timeout_s=120,
        env=env_without_slurm(tmp_path),
    )
    log = assert_ok(proc, "dry run")

    assert "This was a dry-run" in log
    # The plan shows the profile's defaults (the untouched placeholders) and the bundling.
    assert "slurm_partition=<your_partition>" in log
    assert "slurm_account=<your_account>" in log
    assert "Group job train" in log
    assert not (tmp_path / "out").exists()


def test_readme_command_applies_the_profile_settings(tmp_path, monkeypatch):
    """In a clone (laptop profile present), the README command gets the SLURM profile's values."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(copy_workflow(tmp_path / "wf"))
    _, args = parse_args(["--profile", "profiles/slurm", *README_FLAGS, "-n"])

    assert args.executor == "slurm"
    # cores 1: groups are planned one job at a time, as the plugin runs them (see the profile).
    assert args.cores == 1
    assert args.group_components == {"train": 1}
    assert args.retries == 2
    assert args.jobs == 100


def _profile_dry_run(tmp_path, what: str, *flags: str) -> tuple[str, dict[str, int]]:
    """The README's `snakemake --profile profiles/slurm -n` (plus `flags`) in a copy of the
    workflow without any SLURM tool: its log and the training jobs of its first job-stats table
    (Snakemake prints one at the start and one in the summary), rule -> count."""
    workdir = copy_workflow(tmp_path / "wf")
    proc = run_snakemake(
        ["--profile", "profiles/slurm", *README_FLAGS, *flags, "-n"],
        workdir,
        timeout_s=300,
        env=env_without_slurm(tmp_path),
    )
    log = assert_ok(proc, what)
    start = log.index("Job stats:")
    stats = log[start : log.index("\ntotal", start)]
    return log, {
        rule: int(n) for rule, n in re.findall(r"^(train_\w+)\s+(\d+)$", stats, flags=re.M)
    }


@pytest.mark.slow
def test_default_workflow_plan_without_slurm(tmp_path):
    """The README's `snakemake --profile profiles/slurm -n` on the default config, no SLURM."""
    log, counts = _profile_dry_run(tmp_path, "dry run of the default config")
    train_jobs = sum(counts.values())
    assert train_jobs > 1
    # The training jobs are planned in bundles of the profile's group-components size.
    settings = yaml.safe_load(PROFILE_FILE.read_text())
    (bundle,) = [
        int(entry.split("=")[1])
        for entry in settings["group-components"]
        if entry.startswith("train=")
    ]
    assert log.count("Group job train") == -(-train_jobs // bundle)


@pytest.mark.slow
def test_cluster_scale_studies_plan_without_slurm(tmp_path):
    """`make beyond-plan`: config/beyond_cluster.yaml through the SLURM profile as a dry run,
    one SLURM job per (experiment, width), the largest asking for the most memory and time."""
    log, counts = _profile_dry_run(
        tmp_path,
        "dry run of the cluster-scale studies",
        "--configfile",
        "config/beyond_cluster.yaml",
        "--replace-workflow-config",
    )
    config = yaml.safe_load((REPO / "config" / "beyond_cluster.yaml").read_text())
    widths = {f"train_{exp}": len(e["sweep"]["width"]) for exp, e in config["experiments"].items()}
    assert counts == widths and max(counts.values()) == 14
    assert log.count("Group job train") == sum(counts.values())
    # The widest run (rate_tightness, m = 2^20, 10 seeds) asks for the most memory and time.
    requests = [
        (int(re.search(r"mem_mb=(\d+)", line)[1]), int(re.search(r"runtime=(\d+)", line)[1]))
        for line in log.splitlines()
        if "resources:" in line and "gpu=0" in line
    ]
    assert len(requests) == log.count("Group job train")
    # What the profile submits is the plan's own estimate for each width job, nothing else.
    from minnorm.config.validate import validate_config
    from minnorm.workflow.resource_requests import width_mem_mb, width_runtime_min

    resolved = validate_config(config)
    expected = [
        (width_mem_mb(resolved, exp, w), width_runtime_min(resolved, exp, w))
        for exp, e in resolved["experiments"].items()
        for w in e["sweep"]["width"]
    ]
    assert sorted(requests) == sorted(expected)
    assert max(requests)[0] > 4096  # the m = 2^20 job needs more than a small node's default


@pytest.mark.slurm
def test_profile_bundles_group_and_retries_failed_job(cluster, tmp_path, capsys):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(THROWAWAY_SNAKEFILE)
    profile = adapt_profile(
        tmp_path / "profile", partition=cluster["partition"], account=TEST_ACCOUNT
    )

    # Bundling as the README describes it for many small training jobs.
    bundle = ["--group-components", "train=10"]
    proc = run_snakemake(
        ["--profile", str(profile), *bundle, *TEST_ONLY_FLAGS], workdir, timeout_s=300
    )
    log = assert_ok(proc, "throwaway workflow on SLURM")
    submitted = SUBMITTED.findall(log)

    # Group "train": the three part jobs were one SLURM job.
    part_ids = {(workdir / f"out/part{i}.txt").read_text().strip() for i in range(3)}
    assert len(part_ids) == 1
    (group_id,) = part_ids
    assert group_id in submitted
    # The plugin runs a group's jobs one after another, so the group asked for their summed
    # runtime (3 x 2 min) on one CPU (profile `cores: 1`). Finished jobs stay visible to
    # scontrol for MinJobAge.
    request = subprocess.run(
        ["timeout", "-k", "2", "15", "scontrol", "show", "job", group_id],
        capture_output=True,
        text=True,
    ).stdout
    assert "TimeLimit=00:06:00" in request, request
    assert re.search(r"\bNumCPUs=1\b", request), request

    # flaky: failed once, was resubmitted by the profile's `retries`, then succeeded.
    assert "Trying to restart job" in log
    flaky_ids = [m.group(1) for m in re.finditer(r"SLURM jobid (\d+) \(log: [^)]*rule_flaky", log)]
    assert len(flaky_ids) == 2
    first, second = flaky_ids
    assert (workdir / "out/flaky.txt").read_text().strip() == second
    assert sorted(submitted) == sorted([group_id, first, second])

    # The failed attempt's SLURM log is kept under the profile's slurm-logdir; the logs
    # of successful jobs are removed.
    kept = sorted(p.relative_to(workdir) for p in (workdir / "logs/slurm").rglob("*.log"))
    assert kept == [Path(f"logs/slurm/rule_flaky/{first}.log")]
    failed_log = (workdir / kept[0]).read_text()
    assert f"flaky attempt 1 in SLURM job {first}" in failed_log
    assert "failing on purpose" in failed_log

    with capsys.disabled():
        print(f"\n[slurm] throwaway workflow: sbatch job ids {submitted}; kept log {kept[0]}")


def list_results(workdir: Path) -> list[Path]:
    return sorted(p.relative_to(workdir) for p in (workdir / "results").rglob("*") if p.is_file())


def assert_same_run_content(slurm_file: Path, local_file: Path) -> None:
    """Every variable, coordinate and attribute equal, except the ones allowed to differ.

    Run files record a hash of the package sources (`code_sha256`). If it differs, the
    package was edited between the two runs (a shared checkout), so descriptive attributes
    such as `long_name` may differ too and only the values are compared.
    """
    a, b = (
        xr.load_dataset(path).drop_vars(VARIABLES_THAT_MAY_DIFFER, errors="ignore")
        for path in (slurm_file, local_file)
    )
    same_code = a.attrs.get("code_sha256") == b.attrs.get("code_sha256")
    for ds in (a, b):
        for key in ATTRS_THAT_MAY_DIFFER:
            ds.attrs.pop(key, None)
    if same_code:
        xr.testing.assert_identical(a, b)
    else:
        xr.testing.assert_equal(a, b)


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_config_through_slurm_profile_equals_local_run(cluster, tmp_path, capsys):
    local_dir = copy_workflow_with_tiny_config(tmp_path / "local")
    slurm_dir = copy_workflow_with_tiny_config(tmp_path / "slurm")
    profile = adapt_profile(
        tmp_path / "profile", partition=cluster["partition"], account=TEST_ACCOUNT
    )
    slurm_args = ["--profile", str(profile), *README_FLAGS]

    proc = run_snakemake([*slurm_args, *TEST_ONLY_FLAGS], slurm_dir, timeout_s=1200)
    slurm_log = assert_ok(proc, "tiny config through profiles/slurm")
    submitted = SUBMITTED.findall(slurm_log)
    assert submitted, "no job went through sbatch"

    # Every target exists and is up to date: the plan is empty and the summary all "ok".
    again = assert_ok(run_snakemake([*slurm_args, "-n"], slurm_dir, timeout_s=300), "replan")
    assert "Nothing to be done" in again
    summary = assert_ok(
        run_snakemake([*slurm_args, "--summary"], slurm_dir, timeout_s=300), "summary"
    )
    rows = [line.split("\t") for line in summary.splitlines() if "\t" in line]
    header, rows = rows[0], rows[1:]
    status = header.index("status")
    assert rows, "summary lists no outputs"
    not_ok = [(row[0], row[status]) for row in rows if row[status] != "ok"]
    assert not not_ok
    for row in rows:
        output = slurm_dir / row[0]
        assert output.is_file() and output.stat().st_size > 0, row[0]

    # The local reference stops at the checks table: the figures are not compared.
    local_args = ["--cores", "2", "--until", "checks"]
    assert_ok(run_snakemake(local_args, local_dir, timeout_s=1200), "tiny config run locally")

    produced = list_results(slurm_dir)
    reference = list_results(local_dir)
    netcdf = [p for p in reference if p.suffix == ".nc"]
    runs = [p for p in netcdf if "runs" in p.parts]
    assert runs, "no run files produced"
    assert runs == [p for p in produced if "runs" in p.parts and p.suffix == ".nc"]
    for rel in netcdf:
        assert_same_run_content(slurm_dir / rel, local_dir / rel)
    # Text tables derive from the run files only, so they must match byte for byte.
    tables = [p for p in reference if p.suffix in (".csv", ".md")]
    assert tables, "no checks table produced"
    for rel in tables:
        assert (slurm_dir / rel).read_text() == (local_dir / rel).read_text(), rel

    with capsys.disabled():
        print(
            f"\n[slurm] tiny config: {len(submitted)} sbatch submissions, job ids "
            f"{submitted}; {len(rows)} targets produced and up to date; "
            f"{len(netcdf)} netCDF files ({len(runs)} runs) equal to the local run"
        )


@pytest.mark.slow
def test_cluster_scale_study_over_networks_plans_without_slurm(tmp_path):
    """`make families-plan`: config/families_cluster.yaml through the SLURM profile as a dry run,
    one SLURM job per width, each holding every (activation, output layer, draw, seed)."""
    log, counts = _profile_dry_run(
        tmp_path,
        "dry run of the cluster-scale study over networks",
        "--configfile",
        "config/families_cluster.yaml",
        "--replace-workflow-config",
    )
    config = yaml.safe_load((REPO / "config" / "families_cluster.yaml").read_text())
    sweep = config["experiments"]["families"]["sweep"]
    assert counts == {"train_families": len(sweep["width"])} == {"train_families": 11}
    assert log.count("Group job train") == 11
    assert len(sweep["model.activation"]) * len(sweep["model.train_output"]) == 10
