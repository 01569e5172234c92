"""Tests of minnorm.training.system: chunked GD through Lightning equals a plain loop; divergence;
quiet Trainer."""

from __future__ import annotations

import logging

import pytest
import torch

from helpers import reference
from minnorm.core.model import TwoLayerReLU
from minnorm.training import streamed_kernel
from minnorm.training.gd_step import DEFAULT_KERNEL_ISAS
from minnorm.training.system import FullBatchData, GDSystem, make_trainer, quiet_lightning


def problem(m: int = 64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.nn.functional.normalize(torch.randn(16, 3, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(16, generator=gen, dtype=torch.float64)
    W0 = torch.randn(m, 4, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    return W0, a, X, y


def fit(boundaries, lr=0.1, loss="half_sum", impl="eager"):
    W0, a, X, y = problem()
    system = GDSystem(
        TwoLayerReLU(W0, a, True), lr=lr, loss=loss, step_impl=impl, boundaries=boundaries
    )
    trainer = make_trainer("cpu")
    with quiet_lightning():
        trainer.fit(system, datamodule=FullBatchData(X, y, len(boundaries) - 1))
    return system


def plain_loop(steps, lr=0.1, loss="half_sum"):
    """W after ``steps`` plain GD steps from the same start (tests/helpers/reference.py, NumPy)."""
    W0, a, X, y = problem()
    iterates, _ = reference.gd_iterates(
        X.numpy(),
        y.numpy(),
        W0.numpy(),
        a.numpy(),
        lr,
        loss,
        steps,
        True,
        divergence_ratio=float("inf"),
    )
    return torch.from_numpy(iterates[steps])


@pytest.mark.parametrize("loss", ["half_sum", "mean"])
def test_chunked_steps_give_the_plain_loop_iterates_exactly(loss):
    one_chunk = fit([0, 25], loss=loss)
    many_chunks = fit([0, 1, 2, 10, 24, 25], loss=loss)
    assert one_chunk.step == many_chunks.step == 25 and one_chunk.diverged_step is None
    assert torch.equal(one_chunk.model.W.detach(), many_chunks.model.W.detach())
    torch.testing.assert_close(
        one_chunk.model.W.detach(), plain_loop(25, loss=loss), rtol=1e-13, atol=1e-13
    )


def test_resuming_boundaries_continue_from_the_given_step():
    system = fit([10, 15, 30])
    assert system.step == 30
    # 20 steps from W0 (the boundaries only say which step numbers they are).
    torch.testing.assert_close(system.model.W.detach(), plain_loop(20), rtol=1e-13, atol=1e-13)


def test_divergence_is_located_to_the_exact_step():
    # lr = 1e100: the loss overflows at step 2 (W_2 ~ 1e200), whatever the chunking.
    for boundaries in ([0, 50], [0, 1, 2, 3, 50], [0, 2, 50]):
        system = fit(boundaries, lr=1e100)
        assert system.diverged_step == 2, boundaries
        assert system.step <= 2


def test_trainer_is_quiet(caplog):
    with caplog.at_level(logging.INFO):
        fit([0, 3])
    lightning = [r.getMessage() for r in caplog.records if r.name.startswith("pytorch_lightning")]
    assert not any("available" in message for message in lightning), lightning


def test_bad_inputs_are_refused():
    W0, a, X, y = problem()
    with pytest.raises(ValueError, match="strictly increasing"):
        GDSystem(
            TwoLayerReLU(W0, a, True), lr=0.1, loss="mean", step_impl="eager", boundaries=[0, 5, 5]
        )
    with pytest.raises(ValueError, match=r"need X \(n, d\) and y \(n,\)"):
        FullBatchData(X, y[:-1], 1)


def use_path(path: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Make ``select_step`` choose ``path`` for the fused step: ``cpp-<isa>`` (one thread, this CPU
    seen as one whose widest build is isa; skipped if it cannot run it) or ``compiled-streamed``
    (two threads). Returns the thread count to restore."""
    threads = torch.get_num_threads()
    if path.startswith("cpp-"):
        isa = path.removeprefix("cpp-")
        if isa not in streamed_kernel.runnable_isas():
            pytest.skip(
                f"this CPU does not run the {isa} build (torch reports "
                f"{torch.backends.cpu.get_cpu_capability()})"
            )
        monkeypatch.setattr(streamed_kernel, "cpu_isa", lambda: isa)
        torch.set_num_threads(1)
    else:
        torch.set_num_threads(2)
    return threads


# What select_step gives a training job on a CPU like this one, or one with AVX2 only.
FUSED_PATHS = [
    *(f"cpp-{isa}" for isa in DEFAULT_KERNEL_ISAS),
    pytest.param("compiled-streamed", marks=pytest.mark.slow),  # compiles
]


@pytest.mark.parametrize("path", FUSED_PATHS)
def test_fused_system_follows_the_eager_iterates(path, monkeypatch):
    eager = fit([0, 10, 30], impl="eager")
    threads = use_path(path, monkeypatch)
    try:
        fused = fit([0, 10, 30], impl="fused")
    finally:
        torch.set_num_threads(threads)
    assert fused.step_path == path and fused.step_description() == f"fused ({path})"
    assert eager.step_path == "eager" and eager.step_description() == "eager"
    torch.testing.assert_close(
        fused.model.W.detach(), eager.model.W.detach(), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(fused.model.W.detach(), plain_loop(30), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", [f"cpp-{isa}" for isa in DEFAULT_KERNEL_ISAS])
def test_the_kernel_locates_divergence_like_eager(path, monkeypatch):
    """lr = 1e100: inf and NaN weights pass through the kernel; the loss check finds step 2."""
    threads = use_path(path, monkeypatch)
    try:
        for boundaries in ([0, 50], [0, 1, 2, 3, 50]):
            system = fit(boundaries, lr=1e100, impl="fused")
            assert system.step_path == path
            assert system.diverged_step == 2 and system.step <= 2, boundaries
    finally:
        torch.set_num_threads(threads)


def test_no_step_taken_names_no_path():
    W0, a, _, _ = problem()
    system = GDSystem(
        TwoLayerReLU(W0, a, True), lr=0.1, loss="mean", step_impl="fused", boundaries=[30]
    )
    assert system.step_path == "none" and system.step_description() == "fused (none)"


@pytest.mark.parametrize("train_output", [False, True])
def test_update_is_the_sgd_step_bit_for_bit(train_output):
    # GDSystem._update replaces torch.optim.SGD.step on the CPU: the same bits for W (and a).
    from minnorm.core.family_network import TwoLayerNet

    W0, a, X, y = problem(m=257)
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(W0.shape, generator=gen, dtype=torch.float64) for _ in range(3)]
    grads_a = [torch.randn(a.shape, generator=gen, dtype=torch.float64) for _ in range(3)]
    results = []
    for direct in (False, True):
        model = TwoLayerNet(W0.clone(), a.clone(), True, "relu", train_output=train_output)
        system = GDSystem(model, lr=0.037, loss="half_sum", step_impl="eager", boundaries=[0, 3])
        optimizer = system.configure_optimizers()
        for g, ga in zip(grads, grads_a, strict=True):
            model.W.grad = g.clone()
            if train_output:
                model.a.grad = ga.clone()
            if direct:
                system._update(optimizer)
            else:
                optimizer.step()
        results.append((model.W.detach().clone(), model.a.detach().clone()))
    assert not torch.equal(results[0][0], W0)
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    assert torch.equal(results[0][1], a) != train_output
