"""Workflow-level tests: the whole Snakemake workflow on config/tests.yaml, and dry runs of the
default config."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from helpers.workflow import TEST_CONFIG, copy_workflow, expected_job_counts, job_stats, snakemake
from minnorm.config import validate_config
from minnorm.io.files import format_float


def _config(name: str) -> dict:
    with open(REPO / "config" / name, encoding="utf-8") as handle:
        return validate_config(yaml.safe_load(handle))


def _tags(e: dict, sections: tuple[str, ...]) -> list[str]:
    """File-name parts of every combination of the swept settings in `sections`, written out
    here (ARCHITECTURE.md, Files) rather than taken from minnorm.workflow.plan:
    `_model_kappa=0.1`..."""
    keys = sorted(k for k in e["sweep"] if "." in k and k.split(".")[0] in sections)

    def text(value) -> str:
        return (
            str(value).lower()
            if isinstance(value, bool)
            else (format_float(value) if isinstance(value, float) else str(value))
        )

    return [
        "".join(f"_{k.replace('.', '_')}={text(v)}" for k, v in zip(keys, combo, strict=True))
        for combo in itertools.product(*(e["sweep"][k] for k in keys))
    ]


def _expected_targets(config: dict) -> list[str]:
    """Every file the workflow must produce, derived from the config independently of the rules."""
    files = ["results/checks.csv", "results/checks.md", "results/estimates.csv"]
    files += [f"results/forest.{ext}" for ext in ("png", "pdf", "html")]
    for exp, e in config["experiments"].items():
        sweep = e["sweep"]
        files.append(f"results/{exp}/{exp}.nc")
        files += [f"results/{exp}/checks.{ext}" for ext in ("csv", "md", "html")]
        files.append(f"results/{exp}/estimates.csv")
        for width in sweep["width"]:
            for seed in sweep["seed"]:
                for noise in map(format_float, sweep["label_noise"]):
                    files += [
                        f"results/{exp}/data/s{seed}_p{noise}{tag}.nc"
                        for tag in _tags(e, ("data",))
                    ]
                    files += [
                        f"results/{exp}/target/m{width}_s{seed}_p{noise}{tag}.nc"
                        for tag in _tags(e, ("data", "model"))
                    ]
                    for lr in map(format_float, sweep["lr"]):
                        files += [
                            f"results/{exp}/runs/m{width}/s{seed}_p{noise}_lr{lr}{tag}.nc"
                            for tag in _tags(e, ("data", "model", "training"))
                        ]
        files += [
            f"results/{exp}/figures/{f}.{ext}"
            for f in e["figures"]
            for ext in ("png", "pdf", "summary.html")
        ]
    return sorted(set(files))


@pytest.fixture(scope="module")
def finished_workflow(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The tiny config run to completion in a temporary copy of the workflow."""
    root = copy_workflow(tmp_path_factory.mktemp("tiny"))
    result = snakemake(root, "--cores", "2", *TEST_CONFIG)
    return root, result


@pytest.mark.slow
def test_tiny_workflow_produces_every_target(
    finished_workflow: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, result = finished_workflow
    assert result.returncode == 0, result.stderr[-5000:]
    stats = job_stats(result.stderr)
    expected = expected_job_counts(_config("tests.yaml"))
    assert stats.pop("total") == sum(expected.values())
    assert stats == expected
    missing = [f for f in _expected_targets(_config("tests.yaml")) if not (root / f).is_file()]
    assert missing == []
    # Every training job logged, benchmarked, and cleaned up its checkpoints; every finished run
    # is kept as a completed-run link for reruns.
    train_jobs = sum(n for rule, n in expected.items() if rule.startswith("train_"))
    assert len(list(root.glob("results/*/logs/runs/m*.log"))) == train_jobs
    assert len(list(root.glob("results/*/benchmarks/runs/m*.tsv"))) == train_jobs
    assert list(root.glob("results/*/checkpoints/**/*.ckpt")) == []
    runs = sorted(root.glob("results/*/runs/m*/*.nc"))
    assert len(list(root.glob("results/*/checkpoints/**/*.done.nc"))) == len(runs) > 0
    assert list(root.glob("results/**/*.tmp-*")) == []
    # Each experiment's one data job wrote its data files, then the target file of every width
    # (the target files themselves are among the expected files above).
    config = _config("tests.yaml")
    for exp, e in config["experiments"].items():
        log = (root / f"results/{exp}/logs/data.log").read_text(encoding="utf-8")
        targets = [f for f in _expected_targets(config) if f.startswith(f"results/{exp}/target/")]
        assert len(targets) >= len(e["sweep"]["width"])
        assert [line.split(": ")[-1] for line in log.splitlines() if " target " in line] == sorted(
            targets, key=lambda f: (int(f.split("/m")[1].split("_")[0]), f)
        ), log[-3000:]
        assert (root / f"results/{exp}/benchmarks/data.tsv").is_file()


@pytest.mark.slow
def test_swept_settings_are_dims_of_the_collected_file(
    finished_workflow: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """tiny_beyond sweeps lr, model.kappa and data.labels: plain xarray opens them as dims, every
    run is there, and the studies' figures wrote their measured numbers for the report."""
    import xarray as xr

    root, result = finished_workflow
    assert result.returncode == 0, result.stderr[-5000:]
    with xr.open_dataset(root / "results/tiny_beyond/tiny_beyond.nc") as ds:
        assert dict(ds["dist_to_target"].sizes) == {
            "width": 4,
            "seed": 2,
            "label_noise": 1,
            "lr": 2,
            "data_labels": 2,
            "model_kappa": 2,
            "step": ds.sizes["step"],
        }
        assert list(ds.data_labels.values) == ["center", "standardize"]
        assert list(ds.model_kappa.values) == [0.1, 1.0]
        assert int(ds.attrs["n_runs"]) == 64
        # training.horizon 0.5: the lr 0.01 runs end at step 50, the lr 0.02 runs at step 25
        assert set(ds["final_step"].sel(lr=0.01).values.ravel()) == {50}
        assert set(ds["final_step"].sel(lr=0.02).values.ravel()) == {25}
    for figure in ("rate_tightness", "gd_vs_flow", "lazy_phase", "fig1_variants", "fig1_readoffs"):
        summary = (root / f"results/tiny_beyond/figures/{figure}.summary.html").read_text()
        assert summary.startswith("<ul><li>") and summary.count("<li>") >= 2, figure
    checks = (root / "results/tiny_beyond/checks.csv").read_text().lower()
    for claim in ("step size", "kappa m^beta"):
        assert claim in checks, claim
    assert "read off" not in checks  # that row needs the paper's four widths
    assert "upper-half exponent" not in checks  # the study-1 claims need six widths


@pytest.mark.slow
def test_second_invocation_has_nothing_to_do(
    finished_workflow: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, first = finished_workflow
    assert first.returncode == 0, first.stderr[-5000:]
    again = snakemake(root, "--cores", "2", "--dry-run", *TEST_CONFIG)
    assert again.returncode == 0, again.stderr
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_report_of_the_tiny_run(
    finished_workflow: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, first = finished_workflow
    assert first.returncode == 0, first.stderr[-5000:]
    report = snakemake(root, "--report", "results/report.html", *TEST_CONFIG)
    assert report.returncode == 0, report.stderr[-5000:]
    assert (root / "results" / "report.html").stat().st_size > 0


@pytest.mark.slow
def test_default_config_dry_run_lists_the_expected_jobs(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path)
    result = snakemake(root, "--dry-run", "--cores", "2")
    assert result.returncode == 0, result.stderr[-5000:]
    stats = job_stats(result.stdout + result.stderr)
    expected = expected_job_counts(_config("config.yaml"))
    assert stats.pop("total") == sum(expected.values())
    assert stats == expected
    assert not [rule for rule in stats if rule.startswith("target_")]
    assert not (root / "results").exists()
