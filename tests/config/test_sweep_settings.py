"""Swept settings (`sweep: {model.kappa: [...]}`) and `training.horizon`: the plan, the files, the
collected dims, and the data options they sweep (issue 15).

Plan tests work on config dicts alone; the data and file tests use tiny problems (milliseconds
to a few seconds); the whole workflow on config/tests.yaml's tiny_beyond is in test_workflow.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from helpers import REPO
from helpers.runs import synthetic_run
from minnorm.analysis.collect import CollectError, collect_experiment, first_lr, setting_dims
from minnorm.config import validate_config
from minnorm.config.sweep import SETTING_ATTR, setting_text
from minnorm.data.datasets import make_dataset
from minnorm.data.settings import DataSettings
from minnorm.workflow import plan


@pytest.fixture(scope="module")
def tiny() -> dict:
    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        return validate_config(yaml.safe_load(handle))


# --- the plan
# --------------------------------------------------------------------------------------


def test_runs_are_the_product_with_the_swept_settings(tiny: dict) -> None:
    runs = plan.experiment_runs(tiny, "tiny_beyond")
    assert len(runs) == 4 * 2 * 2 * 2 * 2  # widths x seeds x lr x kappa x labels
    assert list(plan.sweep(tiny, "tiny_beyond").settings) == ["data.labels", "model.kappa"]
    assert runs[0].settings == {"data.labels": "center", "model.kappa": 0.1}
    assert len(set(runs)) == len(runs)


def test_each_stage_names_only_the_settings_it_depends_on(tiny: dict) -> None:
    # A model setting does not multiply the data files; it does multiply targets and runs.
    data = plan.data_files(tiny, "tiny_beyond")
    assert data == [
        f"results/tiny_beyond/data/s{s}_p0_data_labels={lab}.nc"
        for s in (0, 1)
        for lab in ("center", "standardize")
    ]
    targets = plan.target_files(tiny, "tiny_beyond", 64)
    assert len(targets) == 2 * 2 * 2
    assert (
        "results/tiny_beyond/target/m64_s1_p0_data_labels=standardize_model_kappa=1.nc" in targets
    )
    runs = plan.width_run_files(tiny, "tiny_beyond", 128)
    assert (
        "results/tiny_beyond/runs/m128/s0_p0_lr0.02_data_labels=center_model_kappa=0.1.nc" in runs
    )
    assert len(runs) == len(set(runs)) == 2 * 2 * 2 * 2


def test_run_config_applies_each_setting_and_horizon_sets_the_steps(tiny: dict) -> None:
    jobs = plan.train_jobs(tiny, "tiny_beyond", 64)
    for job in jobs:
        config = job.config
        assert config.model.kappa == config.sweep["model.kappa"]
        assert config.data.options["labels"] == config.sweep["data.labels"]
        # horizon 0.5: 50 steps at lr 0.01, 25 at lr 0.02
        assert config.training.steps == round(0.5 / config.lr)
    assert {job.config.training.steps for job in jobs} == {25, 50}
    assert len({job.identity for job in jobs}) == len(jobs)
    # The data job of a labels value builds exactly that data set; the target adds kappa.
    data_job = plan.data_jobs(tiny, "tiny_beyond")[0]
    assert data_job.config.data.options["labels"] == "center"
    assert "model" not in data_job.config.to_mapping()
    target_job = plan.target_jobs(tiny, "tiny_beyond", 64)[1]
    assert target_job.config.model.kappa == 1.0
    assert target_job.config.to_mapping()["sweep"] == {"data.labels": "center", "model.kappa": 1.0}


def test_swept_value_order_and_the_base_value_change_nothing(tiny: dict) -> None:
    other = copy.deepcopy(tiny)
    experiment = other["experiments"]["tiny_beyond"]
    experiment["sweep"]["model.kappa"] = [1.0, 0.1]
    experiment["model"]["kappa"] = 0.5  # overridden by the sweep in every run
    for width in (64, 512):
        assert plan.train_job_param(other, "tiny_beyond", width) == plan.train_job_param(
            tiny, "tiny_beyond", width
        )
    assert plan.data_job_param(other, "tiny_beyond") == plan.data_job_param(tiny, "tiny_beyond")


def test_changing_one_swept_value_reruns_only_its_jobs(tiny: dict) -> None:
    other = copy.deepcopy(tiny)
    other["experiments"]["tiny_beyond"]["sweep"]["model.kappa"] = [0.1, 2.0]
    # The data job writes the targets too (kappa is theirs); its data files keep their settings.
    assert plan.data_job_param(other, "tiny_beyond") != plan.data_job_param(tiny, "tiny_beyond")
    assert plan.data_jobs(other, "tiny_beyond") == plan.data_jobs(tiny, "tiny_beyond")
    assert plan.train_job_param(other, "tiny_beyond", 64) != plan.train_job_param(
        tiny, "tiny_beyond", 64
    )
    kept = set(plan.run_files(other, "tiny_beyond")) & set(plan.run_files(tiny, "tiny_beyond"))
    assert len(kept) == len(plan.run_files(tiny, "tiny_beyond")) // 2  # the kappa = 0.1 runs
    unchanged = {job.out: job.identity for job in plan.train_jobs(tiny, "tiny_beyond", 64)}
    for job in plan.train_jobs(other, "tiny_beyond", 64):
        if job.out in unchanged:
            assert job.identity == unchanged[job.out]


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (0.1, "0.1"), (1.0, "1"), (3, "3"), ("center", "center")],
)
def test_setting_text_in_file_names(value, text) -> None:
    assert setting_text(value) == text
    assert plan.setting_tag({"model.x": value}) == f"_model_x={text}"


def test_a_configured_experiment_without_swept_settings_keeps_its_file_names(tiny: dict) -> None:
    assert plan.run_files(tiny, "tiny_sphere")[0] == "results/tiny_sphere/runs/m64/s0_p0_lr0.01.nc"
    assert "sweep" not in plan.train_jobs(tiny, "tiny_sphere", 64)[0].config.to_mapping()


# --- the data options they sweep
# --------------------------------------------------------------------


def _sphere(**options):
    cfg = {"name": "sphere_quadratic", "n_train": 200, "n_test": 50, "dim": 4, "seed": 3, **options}
    return make_dataset(DataSettings.from_mapping(cfg), label_noise=0.0, seed=0)


def test_label_scalings_against_the_raw_labels() -> None:
    raw = _sphere(labels="none")
    beta = torch.tensor(raw.meta["beta"], dtype=torch.float64)
    torch.testing.assert_close(raw.y_train, (raw.X_train @ beta) ** 2, rtol=0, atol=0)
    torch.testing.assert_close(raw.y_test, (raw.X_test @ beta) ** 2, rtol=0, atol=0)
    centred, standard = _sphere(labels="center"), _sphere()
    mean, std = raw.y_train.mean(), raw.y_train.std(correction=0)
    torch.testing.assert_close(centred.y_train, raw.y_train - mean)
    torch.testing.assert_close(centred.y_test, raw.y_test - mean)
    torch.testing.assert_close(standard.y_train, (raw.y_train - mean) / std)
    assert standard.y_train.std(correction=0).item() == pytest.approx(1.0, abs=1e-12)
    # the default is the explicit "standardize", on the same points
    torch.testing.assert_close(
        _sphere(labels="standardize").y_train, standard.y_train, rtol=0, atol=0
    )
    torch.testing.assert_close(raw.X_train, standard.X_train, rtol=0, atol=0)


def test_gaussian_inputs_are_uniform_on_the_sphere_and_cube_inputs_are_not() -> None:
    # E[x_1^4] over the unit sphere in d dims is 3 / (d (d + 2)); normalised cube points put more
    # mass towards the corners' directions (smaller fourth moment of a coordinate).
    d, n = 4, 20000
    cfg = {"name": "sphere_quadratic", "n_train": n, "n_test": 1, "dim": d, "seed": 0}
    gaussian = make_dataset(
        DataSettings.from_mapping({**cfg, "inputs": "gaussian"}), label_noise=0.0, seed=0
    ).X_train
    cube = make_dataset(DataSettings.from_mapping(cfg), label_noise=0.0, seed=0).X_train
    sphere = 3 / (d * (d + 2))
    for X in (gaussian, cube):
        torch.testing.assert_close(X.norm(dim=1), torch.ones(n, dtype=torch.float64))
    fourth = (gaussian**4).mean(dim=0)
    se = (gaussian**4).std(dim=0) / n**0.5
    assert torch.all((fourth - sphere).abs() < 5 * se)
    assert torch.all((cube**4).mean(dim=0) < sphere - 5 * se)


# --- run files and the collected dims
# ---------------------------------------------------------------


def _with_settings(ds: xr.Dataset, **settings) -> xr.Dataset:
    coords = {}
    for dim, value in settings.items():
        coords[dim] = ((), value, {SETTING_ATTR: dim.replace("_", ".", 1)})
    return ds.assign_coords(coords)


def test_collect_makes_each_swept_setting_a_dim(tmp_path: Path) -> None:
    paths = []
    for kappa in (1.0, 0.1):
        for labels in ("none", "center"):
            for seed in (0, 1):
                ds = _with_settings(
                    synthetic_run(64, seed, 0.0, 0.01), model_kappa=kappa, data_labels=labels
                )
                ds["dist_to_target"] = ds["dist_to_target"] * kappa * (2 if labels == "none" else 1)
                path = tmp_path / f"{kappa}_{labels}_{seed}.nc"
                ds.to_netcdf(path)
                paths.append(path)
    collected = collect_experiment(paths)
    assert list(collected["dist_to_target"].dims)[:6] == [
        "width",
        "seed",
        "label_noise",
        "lr",
        "data_labels",
        "model_kappa",
    ]
    assert setting_dims(collected) == ("data_labels", "model_kappa")
    assert list(collected.model_kappa.values) == [0.1, 1.0]
    assert list(collected.data_labels.values) == ["center", "none"]
    final = collected["dist_to_target"].isel(step=-1, width=0, seed=0, label_noise=0, lr=0)
    ratio = final.sel(data_labels="none", model_kappa=1.0) / final.sel(
        data_labels="center", model_kappa=0.1
    )
    assert float(ratio) == pytest.approx(20.0)
    # first_lr (the paper's figures and checks) takes the first value of every swept setting
    sliced = first_lr(collected)
    assert sliced.model_kappa.item() == 0.1 and sliced.data_labels.item() == "center"
    # written and read back with plain xarray, the dims and the key attribute survive
    collected.to_netcdf(tmp_path / "c.nc")
    with xr.open_dataset(tmp_path / "c.nc") as reopened:
        assert reopened.model_kappa.attrs[SETTING_ATTR] == "model.kappa"
        assert setting_dims(reopened) == ("data_labels", "model_kappa")


def test_collect_refuses_runs_with_different_swept_settings(tmp_path: Path) -> None:
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    _with_settings(synthetic_run(64, 0, 0.0, 0.01), model_kappa=0.1).to_netcdf(a)
    synthetic_run(64, 1, 0.0, 0.01).to_netcdf(b)
    with pytest.raises(
        CollectError, match=r"b\.nc: swept settings \[\] differ from \['model_kappa'\]"
    ):
        collect_experiment([a, b])


def test_trained_run_file_carries_its_swept_settings(tiny: dict, tmp_path: Path) -> None:
    from minnorm.workflow import pipeline

    small = copy.deepcopy(tiny)
    experiment = small["experiments"]["tiny_beyond"]
    experiment["sweep"].update(
        width=[16], seed=[0], lr=[0.02], **{"model.kappa": [0.25]}, **{"data.labels": ["none"]}
    )
    (job,) = plan.train_jobs(small, "tiny_beyond", 16)
    data_file, target_file = tmp_path / "d.nc", tmp_path / "t.nc"
    pipeline.make_data_file(plan.data_jobs(small, "tiny_beyond")[0].config, data_file)
    pipeline.make_target_file(
        plan.target_jobs(small, "tiny_beyond", 16)[0].config, data_file, target_file
    )
    with xr.open_dataset(target_file) as target:
        W0 = target["W0"].values
    # kappa 0.25 is the init scale actually used (std of 16 x 4 Gaussian draws)
    assert np.std(W0) == pytest.approx(0.25, rel=0.35)
    out = tmp_path / "r.nc"
    pipeline.make_run_files(
        [
            dataclasses.replace(
                job,
                data=str(data_file),
                target=str(target_file),
                out=str(out),
                checkpoint=str(tmp_path / "r.ckpt"),
                done=str(tmp_path / "r.done.nc"),
            )
        ],
        threads=1,
        label="test",
    )
    with xr.open_dataset(out) as run:
        assert (
            run.model_kappa.item() == 0.25 and run.model_kappa.attrs[SETTING_ATTR] == "model.kappa"
        )
        assert run.data_labels.item() == "none"
        assert int(run.final_step.item()) == 25  # horizon 0.5 at lr 0.02
        assert json.loads(run.attrs["config"])["data"]["labels"] == "none"
