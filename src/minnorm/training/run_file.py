"""The run file's Dataset (ARCHITECTURE.md, file 3) from a finished run's records, its target file
and its config; the caller writes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from minnorm.config.run_config import RunConfig
from minnorm.config.sweep import setting_coordinate, setting_dim
from minnorm.data.target_file import eig_coordinate, variable_attrs
from minnorm.io.files import CF_CONVENTIONS, flag_attrs, provenance_attrs
from minnorm.training.run_plan import DIVERGENCE_LOSS_RATIO, DIVERGENCE_REASONS
from minnorm.training.run_record import TRAJECTORIES, Records

# Scalars copied from the target file into the run file (ARCHITECTURE.md, file 3).
TARGET_SCALARS: tuple[str, ...] = (
    "lambda_min_G",
    "lambda_min_H",
    "cond_G",
    "yGy",
    "yHy",
    "arora_bound",
    "target_norm",
    "used_pinv",
)
TARGET_SPECTRA: tuple[str, ...] = ("H_eigenvalues", "y_projections")


def run_dataset(
    records: Records,
    target: xr.Dataset,
    run: RunConfig,
    diverged_step: int | None,
    wall_time: float,
    device: str,
    gd_step: str,
    *,
    diverged_reason: int = 0,
) -> xr.Dataset:
    """The run file's Dataset: `records` (step, values of TRAJECTORIES) over `step`, the target's
    scalars and spectra, the run's scalars and its sweep values as coordinates; attrs name the
    experiment, loss, dtype, device and provenance, and hold the run config as JSON (`config`).
    `diverged_reason`: an index of DIVERGENCE_REASONS. A run that diverged at step 0 has no
    record: its `step` dim is empty and `final_step` is -1."""
    steps = np.array([s for s, _ in records], dtype=np.int64)
    variables: dict[str, xr.Variable] = {}
    for name, (long_name, units) in TRAJECTORIES.items():
        values = np.array([r[name] for _, r in records], dtype=np.float64)
        variables[name] = xr.Variable(("step",), values, {"long_name": long_name, "units": units})
    for name in TARGET_SCALARS + TARGET_SPECTRA:
        variables[name] = target[name].variable.copy(deep=True)
        variables[name].attrs = variable_attrs(name)
    scalars: dict[str, tuple[Any, str, dict[str, Any]]] = {
        "wall_time_s": (
            np.float64(wall_time),
            "wall-clock training time, summed over resumed segments (runs trained "
            "side by side share the time of their batch)",
            {"units": "s"},
        ),
        "diverged": (
            np.int8(diverged_step is not None),
            f"1 if the loss became non-finite or > "
            f"{DIVERGENCE_LOSS_RATIO:g} x its initial value, or the weights non-finite",
            flag_attrs(("not_diverged", "diverged")),
        ),
        "diverged_step": (
            np.int64(-1 if diverged_step is None else diverged_step),
            "first step whose loss or weights were bad (-1: none)",
            {"units": "1"},
        ),
        "diverged_reason": (
            np.int8(diverged_reason if diverged_step is not None else 0),
            "why the run counts as diverged",
            flag_attrs(DIVERGENCE_REASONS),
        ),
        "final_step": (
            np.int64(steps[-1] if steps.size else -1),
            "last recorded step (-1: none, the run diverged at step 0)",
            {"units": "1"},
        ),
    }
    for name, (value, long_name, attrs) in scalars.items():
        variables[name] = xr.Variable((), value, {"long_name": long_name, **attrs})
    coords: dict[str, Any] = {
        "step": ("step", steps, {"long_name": "gradient descent step", "units": "1"}),
        "eig": eig_coordinate(int(target.sizes["eig"])),
        "width": (
            (),
            np.int64(run.width),
            {"long_name": "width m (number of neurons)", "units": "1"},
        ),
        "seed": ((), np.int64(run.seed), {"long_name": "run seed", "units": "1"}),
        "label_noise": (
            (),
            np.float64(run.label_noise),
            {"long_name": "label noise fraction", "units": "1"},
        ),
        "lr": ((), np.float64(run.training.lr), {"long_name": "learning rate", "units": "1"}),
        **{
            setting_dim(key): setting_coordinate(key, value)
            for key, value in sorted(run.sweep.items())
        },
    }
    attrs = {
        "Conventions": CF_CONVENTIONS,
        "experiment": run.experiment,
        "loss": run.training.loss,
        # The step's implementation (training.gd_step.select_step): "cpp-avx512", "compiled-...".
        "gd_step": gd_step,
    }
    attrs.update(provenance_attrs(device=device, dtype=run.training.dtype))
    attrs["config"] = run.to_json()
    return xr.Dataset(variables, coords=coords, attrs=attrs)
