"""Training every network of issue 29 (any activation, the output layer fixed or trained): the
iterates of W and a against the NumPy GD loop of tests/helpers/reference.py, the recorded
distances over theta against theta* from the target file, seed batches against single runs, and
checkpoints that carry a."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import reference
from helpers.training import build, run_config, sphere_data, train_killed_at
from minnorm.core.activations import ACTIVATIONS
from minnorm.training import family_kernel, streamed_kernel
from minnorm.training.run_plan import DIVERGENCE_LOSS_RATIO
from minnorm.training.train import train_run, train_runs

FAMILIES = [(name, trained) for name in ACTIVATIONS for trained in (False, True)]
# Same float64 operations in another order (BLAS products against NumPy's).
ITERATE_RTOL = 1e-12
LEAK = 0.1


def _model(activation: str, trained: bool) -> dict:
    model: dict = {"activation": activation, "train_output": trained}
    if activation == "leaky_relu":
        model["leak"] = LEAK
    return model


def _run_and_reference(activation, trained, step_impl, loss="half_sum", seed=0):
    data_cfg, data = sphere_data(n=8, dim=3)
    cfg = run_config(
        data_cfg,
        width=40,
        seed=seed,
        lr=0.1,
        loss=loss,
        steps=20,
        every=5,
        log_points=3,
        step_impl=step_impl,
        model=_model(activation, trained),
    )
    target = build(data_cfg, data, cfg)
    W_seen: dict[int, torch.Tensor] = {}
    a_seen: dict[int, torch.Tensor] = {}
    ds = train_run(data, target, cfg, iterates=W_seen, output_iterates=a_seen)
    ref, diverged = reference.family_gd_iterates(
        data.X_train.numpy(),
        data.y_train.numpy(),
        target["W0"].values,
        target["a"].values,
        cfg.lr,
        loss,
        cfg.training.steps,
        True,
        DIVERGENCE_LOSS_RATIO,
        activation=activation,
        leak=LEAK,
        train_output=trained,
    )
    assert diverged is None
    return ds, target, W_seen, a_seen, ref


def _check(ds, target, W_seen, a_seen, ref, trained) -> None:
    assert sorted(W_seen) == list(ds["step"].values)
    assert sorted(a_seen) == (sorted(W_seen) if trained else [])
    W_star, a_star = target["W_star"].values, target["a_star"].values
    W0, a0 = target["W0"].values, target["a"].values
    for step, W in W_seen.items():
        W_ref, a_ref = ref[step]
        assert np.linalg.norm(W.numpy() - W_ref) <= ITERATE_RTOL * np.linalg.norm(W_ref)
        if trained:
            a = a_seen[step].numpy()
            assert np.linalg.norm(a - a_ref) <= ITERATE_RTOL * np.linalg.norm(a_ref)
            assert not np.array_equal(a, a0) or step == 0
        else:
            assert np.array_equal(a_ref, a0)
        to_target = np.sqrt(np.sum((W_ref - W_star) ** 2) + np.sum((a_ref - a_star) ** 2))
        from_init = np.sqrt(np.sum((W_ref - W0) ** 2) + np.sum((a_ref - a0) ** 2))
        assert float(ds["dist_to_target"].sel(step=step)) == pytest.approx(to_target, rel=1e-10)
        assert float(ds["dist_from_init"].sel(step=step)) == pytest.approx(
            from_init, rel=1e-9, abs=1e-12
        )
        parts = ds["dist_to_target_range"].sel(step=step) ** 2
        parts = parts + ds["dist_to_target_perp"].sel(step=step) ** 2
        assert float(parts) == pytest.approx(to_target**2, rel=1e-9)


@pytest.mark.parametrize(("activation", "trained"), FAMILIES)
def test_eager_family_iterates_equal_the_numpy_loop(activation: str, trained: bool) -> None:
    ds, target, W_seen, a_seen, ref = _run_and_reference(activation, trained, "eager")
    paper = activation == "relu" and not trained
    assert ds.attrs["gd_step"] == ("eager" if paper else "eager-family")
    _check(ds, target, W_seen, a_seen, ref, trained)


@pytest.mark.parametrize(("activation", "trained"), [f for f in FAMILIES if f != ("relu", False)])
def test_compiled_family_iterates_equal_the_numpy_loop(activation: str, trained: bool) -> None:
    """Two torch threads (whatever an earlier test left): the compiled formula, not the kernel."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ds, target, W_seen, a_seen, ref = _run_and_reference(activation, trained, "fused", "mean")
    finally:
        torch.set_num_threads(before)
    assert ds.attrs["gd_step"] == "compiled-family-streamed"
    _check(ds, target, W_seen, a_seen, ref, trained)


@pytest.mark.skipif(
    streamed_kernel.cpu_isa() != family_kernel.ISA, reason="the family kernel is AVX-512 only"
)
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("activation", "trained"), [f for f in FAMILIES if f != ("relu", False)])
def test_kernel_family_iterates_equal_the_numpy_loop(activation: str, trained: bool) -> None:
    """A training job (one thread) on an AVX-512 CPU: the C++ family kernel."""
    ds, target, W_seen, a_seen, ref = _run_and_reference(activation, trained, "fused", "mean")
    assert ds.attrs["gd_step"] == "cpp-family-avx512"
    _check(ds, target, W_seen, a_seen, ref, trained)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_seed_batch_is_its_runs_alone_bit_for_bit(threads: int) -> None:
    """With one thread (the C++ kernel on AVX-512) and two (the compiled formula)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _seed_batch_against_runs_alone()
    finally:
        torch.set_num_threads(before)


def _seed_batch_against_runs_alone() -> None:
    data_cfg, data = sphere_data(n=8, dim=3)
    configs = [
        run_config(
            data_cfg, width=40, seed=seed, lr=0.1, steps=12, every=4, log_points=0,
            step_impl="fused", model=_model("tanh", True),
        )
        for seed in (0, 1, 2)
    ]  # fmt: skip
    targets = [build(data_cfg, data, cfg) for cfg in configs]
    W_batch: list[dict[int, torch.Tensor] | None] = [{} for _ in configs]
    a_batch: list[dict[int, torch.Tensor] | None] = [{} for _ in configs]
    together = train_runs([data] * 3, targets, configs, iterates=W_batch, output_iterates=a_batch)
    for cfg, target, ds, W_seen, a_seen in zip(
        configs, targets, together, W_batch, a_batch, strict=True
    ):
        W_alone: dict[int, torch.Tensor] = {}
        a_alone: dict[int, torch.Tensor] = {}
        alone = train_run(data, target, cfg, iterates=W_alone, output_iterates=a_alone)
        assert W_seen is not None and a_seen is not None
        assert all(torch.equal(W_seen[k], W_alone[k]) for k in W_alone)
        assert all(torch.equal(a_seen[k], a_alone[k]) for k in a_alone)
        assert len(a_alone) == 4
        for name in ("dist_to_target", "train_loss", "gap_kernel", "dist_to_target_perp"):
            np.testing.assert_array_equal(ds[name].values, alone[name].values)


def test_a_resumed_run_with_a_trained_output_equals_an_uninterrupted_one(
    tmp_path, monkeypatch
) -> None:
    data_cfg, data = sphere_data(n=8, dim=3)
    cfg = run_config(
        data_cfg, width=40, lr=0.1, steps=30, every=5, log_points=0, checkpoint_every=10,
        step_impl="eager", model=_model("softplus", True),
    )  # fmt: skip
    target = build(data_cfg, data, cfg)
    whole = train_run(data, target, cfg)
    checkpoint = tmp_path / "run.ckpt"
    train_killed_at(20, monkeypatch, data, target, cfg, checkpoint)
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["format"] == 3 and saved["a"] is not None and saved["step"] == 20
    resumed = train_run(data, target, cfg, checkpoint=checkpoint)
    for name in ("dist_to_target", "train_loss", "dist_from_init", "test_loss"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)


def test_float32_family_run_follows_the_float64_one() -> None:
    data_cfg, data = sphere_data(n=8, dim=3)
    runs = {}
    for dtype in ("float64", "float32"):
        cfg = run_config(
            data_cfg, width=40, lr=0.1, steps=20, every=10, log_points=0, dtype=dtype,
            step_impl="fused", model=_model("erf", True),
        )  # fmt: skip
        runs[dtype] = train_run(data, build(data_cfg, data, cfg), cfg)
    np.testing.assert_allclose(
        runs["float32"]["dist_to_target"].values, runs["float64"]["dist_to_target"].values,
        rtol=1e-4,
    )  # fmt: skip
    assert runs["float32"].attrs["dtype"] == "float32"


@pytest.mark.parametrize("step_impl", ["eager", "fused"])
def test_a_diverging_family_run_stops_at_the_loops_step(step_impl: str) -> None:
    data_cfg, data = sphere_data(n=8, dim=3)
    cfg = run_config(
        data_cfg, width=40, lr=3.0, steps=40, every=1, log_points=0, step_impl=step_impl,
        model=_model("softplus", True),
    )  # fmt: skip
    target = build(data_cfg, data, cfg)
    ds = train_run(data, target, cfg)
    _, diverged = reference.family_gd_iterates(
        data.X_train.numpy(), data.y_train.numpy(), target["W0"].values, target["a"].values,
        cfg.lr, "half_sum", 40, True, DIVERGENCE_LOSS_RATIO, activation="softplus", leak=LEAK,
        train_output=True,
    )  # fmt: skip
    assert diverged is not None
    assert int(ds["diverged"]) == 1 and int(ds["diverged_step"]) == diverged
    assert np.isfinite(ds["dist_to_target"].values).all()


def test_runs_of_different_networks_never_share_a_batch() -> None:
    from minnorm.training.batching import batch_key, check_batch, plan_batches

    data_cfg, data = sphere_data(n=8, dim=3)
    models = [
        {},
        {"activation": "tanh"},
        {"activation": "tanh", "train_output": True},
        {"activation": "leaky_relu", "leak": 0.1},
        {"activation": "leaky_relu", "leak": 0.2},
        {"kappa": 0.5},  # kappa changes W0 only: it may share relu's batch
    ]
    runs = [run_config(data_cfg, width=16, model=model) for model in models]
    assert len({batch_key(data, run) for run in runs}) == 5
    assert plan_batches([data] * len(runs), runs) == [[0, 5], [1], [2], [3], [4]]
    with pytest.raises(ValueError, match="activation"):
        check_batch([data, data], [runs[0], runs[1]])
