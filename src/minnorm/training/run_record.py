"""What a training run records: the paper's quantities at given weights, and resumable
checkpoints."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from minnorm.config.run_config import numeric_settings
from minnorm.core.family_network import family_readout
from minnorm.core.family_target import FamilyTarget
from minnorm.core.kernels import infinite_width_kernel
from minnorm.core.model import augment_inputs, network_outputs, readout
from minnorm.core.target import MinNormTarget
from minnorm.core.theory import kernel_regression_predict
from minnorm.data.datasets import Dataset
from minnorm.io import fingerprint
from minnorm.io.files import atomic_write

# name -> (long_name, units) of every quantity recorded over `step` (ARCHITECTURE.md, file 3).
TRAJECTORIES: dict[str, tuple[str, str]] = {
    "train_loss": ("mean squared training error 1/n sum (f - y)^2", "1"),
    "dist_to_target": ("||theta - theta*|| (theta = W, or (W, a) when a is trained)", "1"),
    "dist_to_target_range": (
        "||P0 (theta - theta*)||, P0 the projection onto col(J0)",
        "1",
    ),
    "dist_to_target_perp": ("||P0perp (theta - theta*)||", "1"),
    "dist_from_init": ("||theta - theta0||", "1"),
    "activation_flip_fraction": (
        "fraction of (train point, neuron) pre-activations whose sign differs from init",
        "1",
    ),
    "test_loss": ("mean squared test error", "1"),
    "test_error": ("test 0-1 error of sign(f) (NaN unless labels are +-1)", "1"),
    "test_l1": ("mean absolute test error |f - y| (NaN unless labels are +-1)", "1"),
    "gap_linearized": ("RMS over test points of f - f_L(.; W*)", "1"),
    "gap_kernel": ("RMS over test points of f - infinite-width kernel regression", "1"),
}
# Version 3: a TrainingState (with the output weights a when they are trained) plus the numerics
# fingerprint (version 2 had no a, version 1 no fingerprint).
CHECKPOINT_FORMAT = 3

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
        self.f_kernel_test = kernel_regression_predict(
            infinite_width_kernel(self.Xt_test, target.Xt), H, target.y
        )

    def __call__(self, W: torch.Tensor, a: torch.Tensor | None = None) -> dict[str, float]:
        """All quantities of ``TRAJECTORIES`` at W: (m, p) (any dtype or device); ``a`` is the
        fixed output layer's and is not read (the target's signs are)."""
        t = self.target
        W = W.detach().to("cpu", torch.float64)
        Z = t.Xt @ W.T  # (n, m)
        # A count rather than a float mean: the same number without an (n, m) float64 buffer.
        flips = int(torch.count_nonzero((Z > 0) != t.S)) / Z.numel()
        f = readout(Z, t.a, in_place=True)
        del Z
        diff = W - t.W_star
        in_range, perp = t.projection_norms(diff)
        f_test = readout(self.Xt_test @ W.T, t.a, in_place=True)
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
            if self.pm1_labels
            else nan,
            "test_l1": float(torch.mean(err.abs())) if self.pm1_labels else nan,
            "gap_linearized": _rms(f_test - self.f_linear_test),
            "gap_kernel": _rms(f_test - self.f_kernel_test),
        }

    def progress(self, W: torch.Tensor, a: torch.Tensor | None = None) -> tuple[float, float]:
        """(mean squared training error, ||W - W*||) at W, for the progress log line."""
        t = self.target
        W = W.detach().to("cpu", torch.float64)
        f = network_outputs(W, t.Xt, t.a)
        return float(torch.mean((f - t.y) ** 2)), float(torch.linalg.vector_norm(W - t.W_star))


class FamilyRunMetrics:
    """``RunMetrics`` for every network but the papers' one: the same quantities over theta = (W,
    a) (W alone when a is fixed) against a ``FamilyTarget``; the limit kernels H and H_test come
    from the target file (computed once per data draw), not recomputed per run.

    activation_flip_fraction counts sign changes of the pre-activations (for a smooth activation
    they do not change its Jacobian); gap_linearized is f - f_L(.; theta*); gap_kernel is f - the
    kernel regression with this network's limit kernel.
    """

    def __init__(
        self,
        target: FamilyTarget,
        data: Dataset,
        pm1_labels: bool,
        H: torch.Tensor,
        H_test: torch.Tensor,
    ) -> None:
        self.target = target
        self.pm1_labels = pm1_labels
        bias = target.Xt.shape[1] == data.X_train.shape[1] + 1
        self.Xt_test = augment_inputs(data.X_test, bias).to(torch.float64)
        self.y_test = data.y_test.to(torch.float64)
        self.S0 = target.Z0 > 0
        self.f_linear_test = target.linearized_predict(self.Xt_test, target.W_star, target.a_star)
        self.f_kernel_test = kernel_regression_predict(H_test, H, target.y)

    def _theta(
        self, W: torch.Tensor, a: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        W = W.detach().to("cpu", torch.float64)
        if not self.target.train_output:
            return W, None
        return W, (self.target.a0 if a is None else a.detach().to("cpu", torch.float64))

    def __call__(self, W: torch.Tensor, a: torch.Tensor | None = None) -> dict[str, float]:
        """All quantities of ``TRAJECTORIES`` at theta = (W: (m, p), a: (m,) or None: a0)."""
        t = self.target
        W, a64 = self._theta(W, a)
        a_now = t.a0 if a64 is None else a64
        act = t.activation
        Z = t.Xt @ W.T
        flips = int(torch.count_nonzero((Z > 0) != self.S0)) / Z.numel()
        f = family_readout(Z, a_now, act)
        del Z
        f_test = family_readout(self.Xt_test @ W.T, a_now, act)
        err = f_test - self.y_test
        d = t.distances(W, a64)
        nan = math.nan
        return {
            "train_loss": float(torch.mean((f - t.y) ** 2)),
            "dist_to_target": d.to_target,
            "dist_to_target_range": d.to_target_range,
            "dist_to_target_perp": d.to_target_perp,
            "dist_from_init": d.from_init,
            "activation_flip_fraction": flips,
            "test_loss": float(torch.mean(err**2)),
            "test_error": float(torch.mean((torch.sign(f_test) != self.y_test).to(torch.float64)))
            if self.pm1_labels
            else nan,
            "test_l1": float(torch.mean(err.abs())) if self.pm1_labels else nan,
            "gap_linearized": _rms(f_test - self.f_linear_test),
            "gap_kernel": _rms(f_test - self.f_kernel_test),
        }

    def progress(self, W: torch.Tensor, a: torch.Tensor | None = None) -> tuple[float, float]:
        """(mean squared training error, ||theta - theta*||) at theta, for the progress line."""
        t = self.target
        W, a64 = self._theta(W, a)
        f = family_readout(t.Xt @ W.T, t.a0 if a64 is None else a64, t.activation)
        return float(torch.mean((f - t.y) ** 2)), t.distances(W, a64).to_target


def _same_numeric_settings(saved_json: object, config_json: str) -> bool:
    """Whether two run configs (JSON texts) have equal
    ``minnorm.config.run_config.numeric_settings``."""
    try:
        saved = json.loads(saved_json) if isinstance(saved_json, str) else None
    except ValueError:
        return False
    if not isinstance(saved, dict):
        return False
    return numeric_settings(saved) == numeric_settings(json.loads(config_json))


def _rms(v: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean(v**2)))


@dataclass
class TrainingState:
    """Where a run stands: everything a checkpoint restores.

    step: the step whose weights ``W`` are; W: (m, p) in the training dtype (the live parameter
    during training, a CPU copy in a checkpoint); a: (m,) the output weights when GD trains them
    (None: the output layer is fixed); records: (step, values of ``TRAJECTORIES``) for
    every recorded step so far, in step order; wall_time_s: training time of the segments before
    the current one (a resumed run adds its own).
    """

    step: int
    W: torch.Tensor
    records: Records = field(default_factory=list)
    wall_time_s: float = 0.0
    a: torch.Tensor | None = None


def save_checkpoint(path: Path, state: TrainingState, config_json: str) -> None:
    """Write ``state`` atomically (``files.atomic_write``: temp file, fsync, rename; stale temps
    of dead writers removed), tagged with the run config and ``numerics_fingerprint()``.

    Only tensors, numbers and strings are stored, so loading needs no pickle.
    """
    names = list(TRAJECTORIES)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config_json,
        "numerics": fingerprint.numerics_fingerprint(),
        "step": int(state.step),
        "W": state.W.detach().to("cpu", copy=True),
        "a": None if state.a is None else state.a.detach().to("cpu", copy=True),
        "record_steps": torch.tensor([s for s, _ in state.records], dtype=torch.int64),
        "records": torch.tensor(
            [[r[k] for k in names] for _, r in state.records], dtype=torch.float64
        ),
        "record_names": names,
        "wall_time_s": float(state.wall_time_s),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(
    path: Path, config_json: str, shape: tuple[int, int], logger: logging.Logger
) -> TrainingState | None:
    """The ``TrainingState`` saved at ``path``, or None if there is none that this run can use.

    A checkpoint of another format, other numeric settings
    (``minnorm.config.run_config.numeric_settings`` of
    the two run configs differ: the config was edited since) or other numerical code
    (``numerics_fingerprint()`` differs: resuming would mix two codes' iterates) is deleted with a
    warning naming the reason, and the run starts from step 0: the rule that decides whether a
    finished run is reused. Settings that change no number (``progress_every``,
    ``checkpoint_every``) may differ, and the resumed run still equals an uninterrupted one. One
    that cannot be loaded (truncated, not a checkpoint, missing entries, another shape) is set
    aside (`set_aside`: renamed to ``<name>.broken``, logged) and the run starts from step 0.
    Loaded with ``weights_only=True`` (no pickle).
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        found = (payload.get("format"), payload.get("config"), payload.get("numerics"))
    except Exception as exc:  # torch.load raises many types for one cause: not our checkpoint
        set_aside(path, f"cannot be read ({type(exc).__name__}: {exc})", logger)
        return None
    if found[0] != CHECKPOINT_FORMAT:
        reason = f"has checkpoint format {found[0]}, this code writes {CHECKPOINT_FORMAT}"
    elif not _same_numeric_settings(found[1], config_json):
        reason = "belongs to a different run config (numeric settings differ)"
    elif found[2] != fingerprint.numerics_fingerprint():
        reason = (
            f"was written by other numerical code (numerics fingerprint {str(found[2])[:12]}, "
            f"now {fingerprint.numerics_fingerprint()[:12]})"
        )
    else:
        reason = None
    if reason is not None:
        logger.warning("checkpoint %s %s; discarded, starting from step 0", path, reason)
        path.unlink(missing_ok=True)
        return None
    try:
        W, step, a = payload["W"], int(payload["step"]), payload["a"]
        steps, values, names = payload["record_steps"], payload["records"], payload["record_names"]
        wall_time_s = float(payload["wall_time_s"])
        shape_ok = tuple(W.shape) == shape and names == list(TRAJECTORIES)
        shape_ok = shape_ok and values.shape[0] == steps.shape[0]
        shape_ok = shape_ok and (a is None or tuple(a.shape) == shape[:1])
        records = [
            (int(s), dict(zip(names, map(float, row), strict=True)))
            for s, row in zip(steps, values, strict=True)
        ]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        set_aside(path, f"lacks or mangles {exc}", logger)
        return None
    if not shape_ok:
        set_aside(path, f"does not match this run (W {tuple(W.shape)}, expected {shape})", logger)
        return None
    return TrainingState(step=step, W=W, records=records, wall_time_s=wall_time_s, a=a)


def set_aside(path: Path, why: str, logger: logging.Logger) -> Path:
    """Rename a checkpoint that cannot be used to ``<name>.broken`` (``.broken-1``, ... if taken),
    so that the run starts over while the file stays for a look; logs a warning with `why`."""
    target = path.with_name(path.name + ".broken")
    count = 0
    while target.exists():
        count += 1
        target = path.with_name(f"{path.name}.broken-{count}")
    os.replace(path, target)
    logger.warning(
        "checkpoint %s %s; set aside as %s, the run starts from step 0", path, why, target.name
    )
    return target
