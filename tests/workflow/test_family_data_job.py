"""The data job of a study over networks (issue 29): the limit kernels once per data draw and
network, whatever the number of widths and seeds."""

from __future__ import annotations

import dataclasses

import xarray as xr

from minnorm.config import validate_config
from minnorm.data import target_file
from minnorm.workflow import pipeline, plan


def test_the_data_job_computes_each_limit_kernel_once(tmp_path, monkeypatch) -> None:
    config = validate_config(
        {
            "experiments": {
                "fam": {
                    "data": {"name": "sphere_quadratic", "n_train": 10, "n_test": 6, "dim": 3},
                    "training": {"steps": 5},
                    "sweep": {
                        "width": [16, 32],
                        "seed": [0, 1],
                        "model.activation": ["relu", "tanh"],
                        "model.train_output": [False, True],
                    },
                }
            }
        }
    )
    calls: list[tuple] = []
    real = target_file.limit_kernels

    def counted(data, **settings):
        calls.append(tuple(sorted(settings.items())))
        return real(data, **settings)

    monkeypatch.setattr(target_file, "limit_kernels", counted)

    def moved(job):
        fields = {"out": str(tmp_path / job.out)}
        if hasattr(job, "data"):
            fields["data"] = str(tmp_path / job.data)
        return dataclasses.replace(job, **fields)

    data = [moved(job) for job in plan.data_jobs(config, "fam")]
    targets = [moved(job) for job in plan.target_jobs(config, "fam")]
    assert len(data) == 2 and len(targets) == 2 * 2 * 2 * 2  # a data file per seed
    pipeline.make_data_files(data, targets)
    assert len(calls) == len(set(calls)) == 4  # (activation, train_output); one data draw
    for job in targets:
        with xr.open_dataset(job.out) as ds:
            model = job.config.model
            assert ds.attrs["activation"] == model.activation
            assert ds.attrs["train_output"] == int(model.train_output)
