"""How much of ||theta(T) - theta*|| in `make families` is the part GD on the linearisation
itself has not reached by the horizon, ||theta_lin(T) - theta*||.

For the linearised model at theta0 with Gram G = J0^T J0 (eigenpairs lambda_k, u_k) and the
papers' step theta <- theta - lr J0 (f - y) (loss half_sum), theta_lin(T) - theta* =
-J0 G^-1 (I - lr G)^T (y - f0), so

    ||theta_lin(T) - theta*||^2 = sum_k (1 - lr lambda_k)^(2T) (u_k . (y - f0))^2 / lambda_k,

with y - f0 = J0^T (theta* - theta0) read from each target file (no data file needed). Prints,
per network and width, the geometric mean over the data draws of that norm, of the measured
||theta(T) - theta*|| (results/families/families.nc) and their ratio.

    .venv/bin/python benchmarks/families_unconverged.py [results/families]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from minnorm.core.activations import get_activation
from minnorm.core.family_network import parameter_jvp
from minnorm.core.model import augment_inputs
from minnorm.data.datasets import load_dataset


def unconverged(target: Path, data: Path, lr: float, steps: int) -> float:
    with xr.open_dataset(target) as t:
        ds = load_dataset(data)
        act = get_activation(str(t.attrs["activation"]), leak=float(t.attrs["leak"] or 0.01))
        Xt = augment_inputs(ds.X_train.double(), bool(t.attrs["bias"]))
        W0, a0 = (torch.from_numpy(t[v].values) for v in ("W0", "a"))
        dW = torch.from_numpy(t["W_star"].values) - W0
        da = torch.from_numpy(t["a_star"].values) - a0 if int(t.attrs["train_output"]) else None
        e = parameter_jvp(Xt, Xt @ W0.T, a0, act, dW, da).numpy()
        lam, U = np.linalg.eigh(t["G"].values)
    c = U.T @ e
    return float(np.sqrt(np.sum((1 - lr * lam) ** (2 * steps) * c**2 / lam)))


def main(root: Path) -> None:
    collected = xr.open_dataset(root / f"{root.name}.nc")
    final = collected["dist_to_target"].isel(step=-1)
    rows: dict[tuple[str, bool, int], list[tuple[float, float]]] = {}
    for target in sorted((root / "target").glob("*.nc")):
        with xr.open_dataset(target) as t:
            cfg = json.loads(t.attrs["config"])
            act, trained, m = (
                str(t.attrs["activation"]),
                bool(t.attrs["train_output"]),
                int(t.attrs["width"]),
            )
        draw = int(cfg["data"]["seed"])
        sel = dict(width=m, data_seed=draw, model_activation=act, model_train_output=trained)
        lr = float(collected["lr"].values[0])
        steps = int(collected["final_step"].sel(sel).squeeze())
        data = root / "data" / f"s{cfg['seed']}_p0_data_seed={draw}.nc"
        u = unconverged(target, data, lr, steps)
        d = float(final.sel(sel).squeeze())
        rows.setdefault((act, trained, m), []).append((u, d))
    print(r"| network | m | \|\|theta_lin(T) - theta*\|\| | \|\|theta(T) - theta*\|\| | ratio |")
    print("|---|---|---|---|---|")
    for (act, trained, m), vals in sorted(rows.items()):
        u, d = (float(np.exp(np.mean(np.log([v[i] for v in vals])))) for i in (0, 1))
        label = f"{act}, a {'trained' if trained else 'fixed'}"
        print(f"| {label} | {m} | {u:.3g} | {d:.3g} | {u / d:.2f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/families"))
