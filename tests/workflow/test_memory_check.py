"""Parse-time memory check (issue 26): every stage's estimate against the declared mem_mb or the
machine's memory, refused naming the key, overridable with MINNORM_MEMORY_MB; and the training
estimate against the measured peak RSS of real runs."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.workflow import copy_workflow, snakemake
from minnorm.config import validate_config
from minnorm.workflow import resource_requests
from minnorm.workflow.resource_requests import (
    MEMORY_MB_ENV,
    memory_limit,
    memory_problems,
    memory_refusal,
    width_mem_mb,
)

SMALL = {
    "experiments": {
        "e": {
            "data": {"name": "sphere_quadratic", "n_train": 20, "n_test": 30, "dim": 3},
            "training": {"steps": 10},
            "sweep": {"width": [8, 64], "seed": [0]},
        }
    }
}


def _config(**data: int) -> dict:
    config = copy.deepcopy(SMALL)
    config["experiments"]["e"]["data"].update(data)
    return config


def test_limit_comes_from_the_environment_then_the_declared_mem_mb_then_the_machine():
    machine = resource_requests.machine_memory_mb()
    assert machine > 100
    assert memory_limit(None, {}) == (machine, f"this machine's {machine} MB")
    assert memory_limit(4000, {})[0] == 4000
    assert memory_limit(4000, {MEMORY_MB_ENV: "123"}) == (123, f"{MEMORY_MB_ENV}=123")
    assert memory_limit(4000, {MEMORY_MB_ENV: "0"})[0] is None
    with pytest.raises(ValueError, match=f"{MEMORY_MB_ENV}='lots'"):
        memory_limit(None, {MEMORY_MB_ENV: "lots"})


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            {"sweep": {"width": [8, 2**31 - 1], "seed": [0]}},
            "experiments.e.sweep.width: width 2147483647",
        ),
        ({"data": {"n_train": 10**6}}, "experiments.e.data.n_train: width 8"),
        ({"data": {"dim": 2 * 10**8}}, "experiments.e.data.dim: width 8"),
        ({"data": {"n_test": 10**9}}, "experiments.e.data: the data job needs"),
    ],
)
def test_sizes_that_cannot_fit_are_refused_naming_the_key(change: dict, key: str):
    config = copy.deepcopy(SMALL)
    for section, values in change.items():
        config["experiments"]["e"][section].update(values)
    resolved = validate_config(config)
    problems = memory_problems(resolved, 16_000, "16000 MB")
    assert any(p.startswith(key) for p in problems), problems
    assert memory_problems(resolved, 10**12, "a lot") == []
    assert memory_refusal(resolved, None, {MEMORY_MB_ENV: "0"}) is None


def test_declared_mem_mb_is_the_limit_and_each_width_job_is_checked():
    config = _config(n_train=500)
    config["experiments"]["e"]["sweep"]["width"] = [8, 50_000]
    resolved = validate_config(config)
    need = width_mem_mb(resolved, "e", 50_000)
    assert need > width_mem_mb(resolved, "e", 8) + 100
    assert memory_problems(resolved, need, "x") == []
    (line,) = memory_problems(resolved, need - 1, "the declared mem_mb")
    assert line.startswith("experiments.e.sweep.width: width 50000 needs an estimated")
    # Snakemake passes its resource as an object with `.value`.
    declared = type("Resource", (), {"value": need - 1})()
    refusal = memory_refusal(resolved, declared, {})
    assert refusal is not None and f"mem_mb={need - 1}" in refusal


# Three sizes of one training run: (n_train, width). The estimate (width_mem_mb, what the job asks
# of the scheduler and what the parse-time check compares) must be within 2x of the peak RSS of a
# process that builds the target and trains the run.
RSS_SIZES = [(50, 500), (300, 20_000), (1000, 40_000)]
STEP_IMPL = "eager"
RSS_SCRIPT = """
import json, resource, sys
from minnorm.config import validate_config
from minnorm.workflow import plan
from minnorm.data.datasets import make_dataset
from minnorm.data.target_file import build_target_dataset
from minnorm.training.train import train_run
config = validate_config(json.loads(sys.argv[1]))
e = config["experiments"]["e"]
run = plan.experiment(config, "e").run(e["sweep"]["width"][0], 0, 0.0, 0.01)
data = make_dataset(run.data, label_noise=0.0, seed=0)
target = build_target_dataset(data, width=run.width, seed=0, bias=True, kappa=1.0)
train_run(data, target, run)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("n", "m"), RSS_SIZES)
def test_training_estimate_is_within_2x_of_the_measured_peak(n: int, m: int):
    config = copy.deepcopy(SMALL)
    e = config["experiments"]["e"]
    e["data"].update({"n_train": n, "n_test": 2 * n, "dim": 5})
    e["training"] = {"steps": 20, "record": {"every": 10, "log_points": 0}, "step_impl": STEP_IMPL}
    e["sweep"] = {"width": [m], "seed": [0]}
    estimate = width_mem_mb(validate_config(config), "e", m)
    result = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    peak_mb = float(result.stdout.strip().splitlines()[-1])
    assert 0.5 <= estimate / peak_mb <= 2.0, (n, m, estimate, peak_mb)


@pytest.mark.slow
def test_snakemake_dry_run_refuses_a_width_that_cannot_fit_and_the_override_plans_it(
    tmp_path: Path,
):
    root = copy_workflow(tmp_path)
    config = copy.deepcopy(SMALL)
    config["experiments"]["e"]["sweep"]["width"] = [8, 2**31 - 1]
    (root / "big.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    args = ["-n", "--cores", "1", "--configfile", "big.yaml", "--replace-workflow-config"]
    refused = snakemake(root, *args)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "experiments.e.sweep.width: width 2147483647 needs an estimated" in output, output
    assert "Traceback" not in output and not (root / "results").exists()
    declared = snakemake(root, *args[:-3], "--resources", "mem_mb=100", *args[-3:])
    assert "more than the declared mem_mb=100" in declared.stdout + declared.stderr
    env_result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**__import__("os").environ, MEMORY_MB_ENV: "0"},
    )
    assert env_result.returncode == 0, env_result.stderr[-3000:]
    assert "train_e" in env_result.stdout + env_result.stderr
    shutil.rmtree(root / ".snakemake", ignore_errors=True)
