"""A checkpoint is kept when only settings that change no number differ (log and checkpoint
intervals), and the resumed run equals an uninterrupted one bit for bit; other settings discard
it."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging

import pytest
import torch

from helpers.training import (
    build,
    run_config,
    run_mapping,
    same_run,
    sphere_data,
    train_killed_at,
)
from minnorm.training import run_record
from minnorm.training.run_record import TRAJECTORIES, TrainingState
from minnorm.training.train import train_run


def _save(path, cfg):
    W = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    records = [(0, {k: float(i) for i, k in enumerate(TRAJECTORIES)})]
    run_record.save_checkpoint(
        path, TrainingState(step=7, W=W, records=records), json.dumps(cfg, sort_keys=True)
    )


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("progress_every", 3, True),
        ("checkpoint_every", 5, True),
        ("steps", 41, False),
        ("lr", 0.06, False),
    ],
)
def test_checkpoint_survives_only_non_numeric_setting_changes(tmp_path, caplog, key, value, kept):
    cfg = run_mapping(
        {"name": "sphere_quadratic", "n_train": 4, "n_test": 2, "dim": 3, "seed": 0},
        width=3,
        checkpoint_every=10,
        progress_every=10,
    )
    path = tmp_path / "c.ckpt"
    _save(path, cfg)
    edited = copy.deepcopy(cfg)
    edited["training"][key] = value
    with caplog.at_level(logging.WARNING):
        loaded = run_record.load_checkpoint(
            path, json.dumps(edited, sort_keys=True), (3, 2), logging.getLogger("test")
        )
    assert (loaded is not None) == kept
    assert path.exists() == kept
    if kept:
        assert loaded.step == 7
    else:
        assert "numeric settings differ" in caplog.text


def test_resume_with_other_intervals_is_bit_identical(tmp_path, monkeypatch):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=64, steps=60, every=10, checkpoint_every=20, lr=0.3)
    target = build(data_cfg, data, cfg)
    full_iterates: dict[int, torch.Tensor] = {}
    full = train_run(data, target, cfg, iterates=full_iterates)

    checkpoint = tmp_path / "run.ckpt"
    train_killed_at(40, monkeypatch, data, target, cfg, checkpoint)

    # The user changed the log and checkpoint intervals before restarting the job.
    edited = dataclasses.replace(
        cfg, training=dataclasses.replace(cfg.training, checkpoint_every=7, progress_every=3)
    )
    resumed_iterates: dict[int, torch.Tensor] = {}
    resumed = train_run(data, target, edited, checkpoint=checkpoint, iterates=resumed_iterates)
    assert sorted(resumed_iterates) == [50, 60]  # resumed at step 40, not started over
    for step, W in resumed_iterates.items():
        assert torch.equal(W, full_iterates[step])
    # The file equals an uninterrupted run of the edited config (whose `config` attr it records).
    same_run(train_run(data, target, edited), resumed)
    assert resumed["dist_to_target"].values.tolist() == full["dist_to_target"].values.tolist()


def _truncated(path, good):
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def _garbage(path, good):
    path.write_bytes(b"not a checkpoint at all\n" * 10)


def _other_width(path, good, data_cfg=None):
    # A real checkpoint of this config, but W of another shape (as if copied from another width).
    payload = torch.load(good, weights_only=True)
    payload["W"] = torch.zeros(5, 5, dtype=torch.float64)
    torch.save(payload, path)


def _no_records(path, good):
    payload = torch.load(good, weights_only=True)
    del payload["records"]
    torch.save(payload, path)


@pytest.mark.parametrize("damage", [_truncated, _garbage, _other_width, _no_records])
def test_checkpoint_that_cannot_be_loaded_is_set_aside_and_the_run_starts_over(
    tmp_path, monkeypatch, caplog, damage
):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=16, steps=40, checkpoint_every=10, progress_every=0)
    target = build(data_cfg, data, cfg)
    uninterrupted = train_run(data, target, cfg)
    good = tmp_path / "killed.ckpt"
    train_killed_at(20, monkeypatch, data, target, cfg, good)
    path = tmp_path / "run.ckpt"
    damage(path, good)
    (tmp_path / "run.ckpt.broken").write_text("an earlier broken one")
    with caplog.at_level(logging.WARNING):
        restarted = train_run(data, target, cfg, checkpoint=path)
    same_run(restarted, uninterrupted)
    # Set aside, not deleted; the earlier broken one is kept too.
    assert (tmp_path / "run.ckpt.broken-1").exists()
    assert (tmp_path / "run.ckpt.broken").read_text() == "an earlier broken one"
    assert f"checkpoint {path}" in caplog.text and "set aside as run.ckpt.broken-1" in caplog.text
    assert "starts from step 0" in caplog.text
