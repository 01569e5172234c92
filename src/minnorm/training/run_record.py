"""What a training run records: the paper's quantities at given weights, and resumable checkpoints."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

from minnorm.data.datasets import Dataset
from minnorm.training.gd_step import outputs
from minnorm.core.kernels import infinite_width_kernel
from minnorm.core.model import augment_inputs
from minnorm.core.target import MinNormTarget
from minnorm.core.theory import kernel_regression_predict

# name -> (long_name, units) of every quantity recorded over `step` (ARCHITECTURE.md, file 3).
TRAJECTORIES: dict[str, tuple[str, str]] = {
    "train_loss": ("mean squared training error 1/n sum (f - y)^2", "1"),
    "dist_to_target": ("||W - W*||", "1"),
    "dist_to_target_range": ("||P0 (W - W*)||, P0 the projection onto col(J0)", "1"),
    "dist_to_target_perp": ("||P0perp (W - W*)||", "1"),
    "dist_from_init": ("||W - W0||", "1"),
    "activation_flip_fraction": ("fraction of (train point, neuron) activations differing from init", "1"),
    "test_loss": ("mean squared test error", "1"),
    "test_error": ("test 0-1 error of sign(f) (NaN unless labels are +-1)", "1"),
    "test_l1": ("mean absolute test error |f - y| (NaN unless labels are +-1)", "1"),
    "gap_linearized": ("RMS over test points of f - f_L(.; W*)", "1"),
    "gap_kernel": ("RMS over test points of f - infinite-width kernel regression", "1"),
}
CHECKPOINT_FORMAT = 1

Records = list[tuple[int, dict[str, float]]]


class RunMetrics:
    """Evaluates the recorded quantities at weights W: (m, p), in float64 on the CPU.

    The references that do not change during training (init activation pattern, f_L(.; W*) and
    kernel regression on the test points) are computed once here.
    """

    def __init__(self, target: MinNormTarget, data: Dataset, pm1_labels: bool) -> None:
        self.target = target
        self.pm1_labels = pm1_labels
        bias = target.Xt.shape[1] == data.X_train.shape[1] + 1
        self.Xt_test = augment_inputs(data.X_test, bias)
        self.y_test = data.y_test
        self.f_linear_test = target.linearized_predict(self.Xt_test, target.W_star)
        H = infinite_width_kernel(target.Xt, target.Xt)
        self.f_kernel_test = kernel_regression_predict(infinite_width_kernel(self.Xt_test, target.Xt), H, target.y)

    def __call__(self, W: torch.Tensor) -> dict[str, float]:
        """All quantities of ``TRAJECTORIES`` at W: (m, p) (any dtype or device)."""
        t = self.target
        W = W.detach().to("cpu", torch.float64)
        Z = t.Xt @ W.T  # (n, m)
        f = torch.relu(Z) @ t.a / math.sqrt(W.shape[0])
        flips = float(((Z > 0) != t.S).to(torch.float64).mean())
        del Z
        diff = W - t.W_star
        in_range, perp = t.projection_norms(diff)
        f_test = outputs(W, self.Xt_test, t.a)
        err = f_test - self.y_test
        nan = math.nan
        return {
            "train_loss": float(torch.mean((f - t.y) ** 2)),
            "dist_to_target": float(torch.linalg.vector_norm(diff)),
            "dist_to_target_range": in_range,
            "dist_to_target_perp": perp,
            "dist_from_init": float(torch.linalg.vector_norm(W - t.W0)),
            "activation_flip_fraction": flips,
            "test_loss": float(torch.mean(err**2)),
            "test_error": float(torch.mean((torch.sign(f_test) != self.y_test).to(torch.float64)))
            if self.pm1_labels else nan,
            "test_l1": float(torch.mean(err.abs())) if self.pm1_labels else nan,
            "gap_linearized": _rms(f_test - self.f_linear_test),
            "gap_kernel": _rms(f_test - self.f_kernel_test),
        }

    def progress(self, W: torch.Tensor) -> tuple[float, float]:
        """(mean squared training error, ||W - W*||) at W, for the progress log line."""
        t = self.target
        W = W.detach().to("cpu", torch.float64)
        f = outputs(W, t.Xt, t.a)
        return float(torch.mean((f - t.y) ** 2)), float(torch.linalg.vector_norm(W - t.W_star))


def _rms(v: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean(v**2)))


def save_checkpoint(path: Path, W: torch.Tensor, step: int, records: Records, wall_time_s: float,
                    config_json: str) -> None:
    """Write W (training dtype), the step and the records atomically (temp file, fsync, rename).

    Only tensors, numbers and strings are stored, so loading needs no pickle.
    """
    names = list(TRAJECTORIES)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config_json,
        "step": int(step),
        "W": W.detach().to("cpu", copy=True),
        "record_steps": torch.tensor([s for s, _ in records], dtype=torch.int64),
        "records": torch.tensor([[r[k] for k in names] for _, r in records], dtype=torch.float64),
        "record_names": names,
        "wall_time_s": float(wall_time_s),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, config_json: str, shape: tuple[int, int],
                    logger: logging.Logger) -> tuple[torch.Tensor, int, Records, float] | None:
    """(W, step, records, wall_time_s) from ``path``, or None if absent or from another config.

    A checkpoint of a different run config (e.g. the config was edited since) is ignored with a
    warning and overwritten later; an unreadable one raises ValueError naming the file.
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        stale = payload["config"] != config_json
        W, step = payload["W"], int(payload["step"])
        steps, values, names = payload["record_steps"], payload["records"], payload["record_names"]
    except Exception as exc:  # torch.load raises many types for one cause: not our checkpoint
        raise ValueError(f"checkpoint {path} cannot be read ({exc}); delete it to start over") from exc
    if stale:
        logger.warning("checkpoint %s belongs to a different run config; starting from step 0", path)
        return None
    if tuple(W.shape) != shape or names != list(TRAJECTORIES) or values.shape[0] != steps.shape[0]:
        raise ValueError(f"checkpoint {path} does not match this run (W {tuple(W.shape)}, expected {shape})")
    records = [(int(s), dict(zip(names, map(float, row)))) for s, row in zip(steps, values)]
    return W, step, records, float(payload["wall_time_s"])
