"""Runs trained side by side (a seed batch): every run exactly as it would be alone.

A batch of S runs of one width on the same training inputs shares each GD step's call (one
(S, m, p) weight tensor) but no number: each run's gradient reads only its own weights, signs and
labels. So every run's file must equal, bit for bit (wall time aside), the file of the same run
trained alone, whatever else is in the batch: other seeds, other labels (label noise), a run that
diverges, runs resumed from checkpoints at other steps.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from helpers import reference
from helpers.training import build, run_config, same_run, sphere_data
from minnorm.core.model import TwoLayerReLU, augment_inputs
from minnorm.training import recorder, train
from minnorm.training.batching import plan_batches, start_groups
from minnorm.training.gd_step import (
    FusedGradient,
    analytic_gradient,
    eager_gradient_fn,
    residual_scale,
    streamed_gradient,
)
from minnorm.training.run_plan import DIVERGENCE_LOSS_RATIO
from minnorm.training.system import FullBatchData, GDSystem, make_trainer, quiet_lightning
from minnorm.training.train import train_run, train_runs

# The same gradient through another kernel (batched BLAS products, autograd): float64 rounding.
FLOAT64_RTOL = 1e-12


def batch_problem(S: int = 3, n: int = 21, d: int = 4, m: int = 300, seed: int = 7):
    """S networks of width m on one input set X: (n, d), with their own W0: (S, m, p), signs
    a: (S, m) and labels y: (S, n) (as label noise would give). n odd: the streamed formula's
    forward pass takes the points in pairs plus one."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(S, n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(S, m, d + 1, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (S, m), generator=gen, dtype=torch.float64) * 2 - 1
    return X, y, W0, a


@pytest.mark.parametrize("loss", ["half_sum", "mean"])
def test_each_runs_gradient_in_a_batch_is_its_own(loss):
    X, y, W0, a = batch_problem()
    Xt = augment_inputs(X, True)
    scale = torch.tensor(residual_scale(loss, X.shape[0]), dtype=torch.float64)
    g_an, v_an = analytic_gradient(W0, Xt, y, a, scale)
    g_st, v_st = streamed_gradient(W0.mT.contiguous(), Xt, y, a, scale)
    g_bl, v_bl = streamed_gradient(W0.mT.contiguous(), Xt, y, a, scale, block=64)  # 4 x 64 + 44
    model = TwoLayerReLU(W0, a, True)
    g_eg, v_eg = eager_gradient_fn(model, X, y, loss)(model.W)
    assert g_an.shape == g_st.shape == g_bl.shape == g_eg.shape == W0.shape
    assert v_an.shape == v_st.shape == v_bl.shape == v_eg.shape == (3,)
    for s in range(3):
        ref_value, ref_grad = reference.loss_and_grad(
            W0[s].numpy(), X.numpy(), y[s].numpy(), a[s].numpy(), loss, True
        )
        for grad, value in ((g_an, v_an), (g_st, v_st), (g_bl, v_bl), (g_eg, v_eg)):
            np.testing.assert_allclose(
                grad[s].numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=1e-15 * np.abs(ref_grad).max()
            )
            assert float(value[s]) == pytest.approx(ref_value, rel=FLOAT64_RTOL)


@pytest.mark.slow  # compiles the streamed step for a batch and for one run, blocked and not
@pytest.mark.parametrize("block", [0, 64])
def test_compiled_batched_step_equals_the_single_run_step_bit_for_bit(block):
    X, y, W0, a = batch_problem()
    batched = FusedGradient(TwoLayerReLU(W0, a, True), X, y, "half_sum", block=block)
    assert batched.formula == "streamed" and batched.block == (block or None)
    grad, value = batched(W0)
    assert batched.compiled
    for s in range(3):
        single = FusedGradient(TwoLayerReLU(W0[s], a[s], True), X, y[s], "half_sum", block=block)
        g, v = single(W0[s])
        assert torch.equal(grad[s], g) and torch.equal(value[s], v), s


def test_a_batch_divergence_is_located_per_run():
    """Four runs at lr = 2, labels scaled by 10, 100, 1 and 10: the NumPy reference diverges the
    second at step 4 and the third at step 1 and keeps the others; the batch finds the same
    steps and the surviving runs' weights equal their single-run weights (to rounding: eager)."""
    data_cfg, data = sphere_data()
    scales, seeds = (10.0, 100.0, 1.0, 10.0), (0, 1, 0, 1)
    W0s, a_s, ys, expected = [], [], [], []
    for seed, c in zip(seeds, scales, strict=True):
        target = build(data_cfg, data, run_config(data_cfg, width=64, seed=seed))
        W0s.append(torch.from_numpy(target["W0"].values))
        a_s.append(torch.from_numpy(target["a"].values))
        ys.append(c * data.y_train)
        expected.append(
            reference.gd_iterates(
                data.X_train.numpy(),
                ys[-1].numpy(),
                W0s[-1].numpy(),
                a_s[-1].numpy(),
                2.0,
                "half_sum",
                30,
                True,
                DIVERGENCE_LOSS_RATIO,
            )
        )
    assert [bad for _, bad in expected] == [None, 4, 1, None]

    def fit(W0, a, y, limits):
        system = GDSystem(
            TwoLayerReLU(W0, a, True),
            lr=2.0,
            loss="half_sum",
            step_impl="eager",
            boundaries=[0, 3, 30],
            loss_limit=limits,
        )
        with quiet_lightning():
            make_trainer("cpu").fit(system, datamodule=FullBatchData(data.X_train, y, 2))
        return system

    limits = [
        DIVERGENCE_LOSS_RATIO
        * 0.5
        * float(
            torch.sum((torch.relu(augment_inputs(data.X_train, True) @ W.T) @ a / 8.0 - y) ** 2)
        )
        for W, a, y in zip(W0s, a_s, ys, strict=True)
    ]
    batch = fit(torch.stack(W0s), torch.stack(a_s), torch.stack(ys), limits)
    assert batch.diverged_steps == [None, 4, 1, None] and batch.step == 30
    for s in (0, 3):
        alone = fit(W0s[s], a_s[s], ys[s], limits[s])
        assert alone.diverged_step is None
        # Eager autograd: a batched BLAS product against a single one, equal to rounding.
        torch.testing.assert_close(
            batch.model.W.detach()[s], alone.model.W.detach(), rtol=FLOAT64_RTOL, atol=0
        )
        np.testing.assert_allclose(
            batch.model.W.detach()[s].numpy(), expected[s][0][30], rtol=1e-10, atol=1e-12
        )


def _runs(step_impl: str, seeds=(0, 1, 2), **settings):
    """Data, targets and configs of runs of width 64 that differ in seed (and labels for seed 2)."""
    data_cfg, data = sphere_data()
    configs = [
        run_config(data_cfg, width=64, seed=seed, step_impl=step_impl, **settings) for seed in seeds
    ]
    datas = [
        data if seed != 2 else dataclasses.replace(data, y_train=-0.5 * data.y_train)
        for seed in seeds
    ]
    targets = [build(data_cfg, d, cfg) for d, cfg in zip(datas, configs, strict=True)]
    return datas, targets, configs


@pytest.mark.slow  # compiles the fused step for a batch of 3 and for one run
@pytest.mark.parametrize("step_impl", ["fused", "eager"])
def test_runs_trained_side_by_side_equal_runs_trained_alone(step_impl):
    datas, targets, configs = _runs(step_impl, steps=60, lr=0.3)
    batch_iterates: list[dict[int, torch.Tensor]] = [{}, {}, {}]
    together = train_runs(datas, targets, configs, iterates=batch_iterates)
    for s in range(3):
        alone_iterates: dict[int, torch.Tensor] = {}
        alone = train_run(datas[s], targets[s], configs[s], iterates=alone_iterates)
        if step_impl == "fused":
            same_run(together[s], alone)  # bit for bit, every variable but the wall time
            assert all(torch.equal(batch_iterates[s][k], W) for k, W in alone_iterates.items())
        else:  # autograd through a batched product: another BLAS call, the same numbers to rounding
            for name in ("dist_to_target", "train_loss", "dist_from_init"):
                np.testing.assert_allclose(
                    together[s][name].values, alone[name].values, rtol=FLOAT64_RTOL
                )
        assert sorted(batch_iterates[s]) == sorted(alone_iterates)
    # The relabelled run really is another run.
    assert float(together[2]["train_loss"][0]) != float(together[0]["train_loss"][0])


def test_runs_that_cannot_share_a_batch_are_refused():
    datas, targets, configs = _runs("eager")
    other = dataclasses.replace(
        configs[1], lr=0.01, training=dataclasses.replace(configs[1].training, lr=0.01)
    )
    with pytest.raises(ValueError, match="run 1 of the batch differs"):
        train_runs(datas, targets, [configs[0], other, configs[2]])
    moved = dataclasses.replace(datas[1], X_train=datas[1].X_train.flip(0))
    with pytest.raises(ValueError, match="run 1 of the batch differs"):
        train_runs([datas[0], moved], targets[:2], configs[:2])


@pytest.mark.slow  # compiles the fused step for batches of 3, 2 and 1
def test_a_killed_batch_resumes_each_run_from_its_own_checkpoint(tmp_path, monkeypatch, caplog):
    """Killed after the first run's step-40 checkpoint, the others' last being step 20: the resume
    trains the first from 40 and the other two from 20 (two batches, of another size than the
    first), and every run file equals its uninterrupted run bit for bit."""
    datas, targets, configs = _runs("fused", steps=60, every=10, checkpoint_every=20, lr=0.3)
    full = train_runs(datas, targets, configs)
    checkpoints = [tmp_path / f"run{s}.ckpt" for s in range(3)]
    real_save = recorder.save_checkpoint

    def save_then_die(path, state, config_json):
        real_save(path, state, config_json)
        if state.step == 40:
            raise RuntimeError("simulated kill")

    monkeypatch.setattr(recorder, "save_checkpoint", save_then_die)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_runs(datas, targets, configs, checkpoints=checkpoints)
    monkeypatch.setattr(recorder, "save_checkpoint", real_save)
    with caplog.at_level(logging.INFO, logger="minnorm.training.train"):
        resumed = train_runs(
            datas,
            targets,
            configs,
            checkpoints=checkpoints,
            logger=logging.getLogger(train.__name__),
        )
    assert caplog.text.count("resuming from checkpoint") == 3
    assert "at step 40" in caplog.text and "at step 20" in caplog.text
    assert "2 runs side by side" in caplog.text
    for s in range(3):
        same_run(resumed[s], full[s])


def test_a_jobs_runs_are_batched_by_inputs_and_settings_within_the_memory_limit(monkeypatch):
    from minnorm.training import resources

    data_cfg, data = sphere_data()
    _, other = sphere_data(seed=1)  # other inputs X
    relabelled = dataclasses.replace(data, y_train=-data.y_train)
    datas = [data, data, data, other, relabelled, data]
    runs = [run_config(data_cfg, width=64, seed=s) for s in range(5)]
    runs.append(run_config(data_cfg, width=64, seed=5, lr=0.01))  # other training settings
    assert plan_batches(datas, runs) == [[0, 1, 2, 4], [3], [5]]
    # A memory budget for two runs' GD steps: the first batch splits, in job order.
    monkeypatch.setattr(
        resources, "BATCH_TRAINING_BYTES", 2 * resources.training_bytes(12, 64, 5, "float64")
    )
    assert resources.batch_size_limit(12, 64, 5, "float64") == 2
    assert plan_batches(datas, runs) == [[0, 1], [2, 4], [3], [5]]
    assert start_groups([20, 40, 20]) == [[0, 2], [1]]


def test_batch_memory_estimate_adds_the_training_share_of_each_further_run():
    from minnorm.training.resources import estimate_batch_bytes, estimate_run_bytes, training_bytes

    one = estimate_run_bytes(100, 10000, 6, "float64", 200)
    assert estimate_batch_bytes(100, 10000, 6, "float64", 200, runs=1) == one
    five = estimate_batch_bytes(100, 10000, 6, "float64", 200, runs=5)
    # Four more (n, m) GD-step working sets of 4 n m doubles, their activation flags and weights.
    assert five - one == 4 * (
        training_bytes(100, 10000, 6, "float64") + 300 * 10000 + 32 * 10000 * 6
    )
    assert training_bytes(100, 10000, 6, "float64") == 8 * (4 * 100 * 10000 + 4 * 10000 * 6)
