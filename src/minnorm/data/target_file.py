"""The per-(width, seed) target file: W0, a, W*, the Gram matrices and the theory numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from minnorm.core.kernels import infinite_width_kernel
from minnorm.core.model import augment_inputs, init_weights
from minnorm.core.target import MinNormTarget, min_norm_target
from minnorm.core.theory import arora_bound, kernel_spectrum, quadratic_form_inv
from minnorm.data.datasets import Dataset
from minnorm.io.files import CF_CONVENTIONS, flag_attrs

# Recomputing W* from the stored W0 and a repeats the same float64 operations, so it agrees to
# rounding (~1e-15 relative); 1e-10 still tolerates a different BLAS or a cond(G) up to ~1e5,
# while a wrong data file or edited weights change W* at O(1).
W_STAR_RTOL = 1e-10

# name -> (dims, long_name, units); exactly the target-file variables of ARCHITECTURE.md. Units are
# UDUNITS strings ("1": dimensionless); flags (units "") get FLAGS' flag attributes instead.
TARGET_VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "W0": (("neuron", "weight_dim"), "initial first-layer weights", "1"),
    "a": (("neuron",), "fixed output signs", "1"),
    "W_star": (("neuron", "weight_dim"), "linearized min-norm interpolating weights W*", "1"),
    "G": (("train", "train2"), "empirical NTK Gram matrix at init J0^T J0", "1"),
    "H": (("train", "train2"), "infinite-width NTK Gram matrix", "1"),
    "H_eigenvalues": (("eig",), "eigenvalues of H, descending", "1"),
    "y_projections": (("eig",), "|v_i . y| for the eigenvectors of H", "1"),
    "lambda_min_G": ((), "smallest eigenvalue of G", "1"),
    "lambda_min_H": ((), "smallest eigenvalue of H", "1"),
    "cond_G": ((), "condition number of G", "1"),
    "yGy": ((), "(y - f0)^T G^-1 (y - f0) = ||W* - W0||^2", "1"),
    "yHy": ((), "y^T H^-1 y", "1"),
    "arora_bound": ((), "Arora et al. bound sqrt(2 y^T H^-1 y / n)", "1"),
    "target_norm": ((), "||W* - W0||", "1"),
    "used_pinv": ((), "1 if G was singular and the pseudo-inverse was used", ""),
}
# CF flag meanings of the 0/1 flag variables (which carry no units).
FLAGS: dict[str, tuple[str, ...]] = {"used_pinv": ("cholesky_solve", "pseudo_inverse")}
# The coordinate of the `eig` dimension: eigenvalues are stored in descending order.
EIG_ATTRS = {"long_name": "rank of the eigenvalue of H (0 = largest)", "units": "1"}


def variable_attrs(name: str) -> dict[str, Any]:
    """CF attributes of target variable ``name``: long_name, and units or flag attributes."""
    _, long_name, units = TARGET_VARIABLES[name]
    attrs: dict[str, Any] = {"long_name": long_name}
    if name in FLAGS:
        attrs.update(flag_attrs(FLAGS[name]))
    else:
        attrs["units"] = units
    return attrs


def eig_coordinate(n: int) -> tuple[str, np.ndarray, dict[str, str]]:
    """The `eig` coordinate (dims, values 0..n-1, attrs) for spectra of n eigenvalues."""
    return ("eig", np.arange(n, dtype=np.int64), dict(EIG_ATTRS))


def build_target_dataset(
    data: Dataset, *, width: int, seed: int, bias: bool, kappa: float
) -> xr.Dataset:
    """Initialise the network for (width, seed) and compute W* and the kernel quantities.

    data: train inputs X_train (n, d) and labels y_train (n,). Returns an xarray Dataset with the
    variables of ``TARGET_VARIABLES`` (float64; ``used_pinv`` int8) and attrs bias, kappa, width,
    seed. H uses the augmented inputs x~ when ``bias``; yHy and the bound use the raw labels y.
    """
    X = data.X_train.to(torch.float64)
    y = data.y_train.to(torch.float64)
    Xt = augment_inputs(X, bias)
    W0, a = init_weights(width, Xt.shape[1], kappa, seed=seed)
    target = min_norm_target(Xt, y, W0, a)
    H = infinite_width_kernel(Xt, Xt)
    eigenvalues, projections = kernel_spectrum(H, y)
    yHy = quadratic_form_inv(H, y)
    values: dict[str, Any] = {
        "W0": W0,
        "a": a,
        "W_star": target.W_star,
        "G": target.G,
        "H": H,
        "H_eigenvalues": eigenvalues,
        "y_projections": projections,
        "lambda_min_G": target.info.lambda_min,
        "lambda_min_H": float(eigenvalues[-1]),
        "cond_G": target.info.cond,
        "yGy": target.yGy,
        "yHy": yHy,
        "arora_bound": arora_bound(yHy, len(y)),
        "target_norm": target.target_norm,
        "used_pinv": int(target.info.used_pinv),
    }
    variables = {}
    for name, (dims, _, _) in TARGET_VARIABLES.items():
        dtype = np.int8 if name == "used_pinv" else np.float64
        value = values[name]
        array = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value, dtype=dtype)
        variables[name] = xr.Variable(dims, array, attrs=variable_attrs(name))
    attrs = {
        "bias": int(bias),
        "kappa": float(kappa),
        "width": int(width),
        "seed": int(seed),
        "Conventions": CF_CONVENTIONS,
    }
    return xr.Dataset(variables, coords={"eig": eig_coordinate(len(y))}, attrs=attrs)


def load_target(ds: xr.Dataset, data: Dataset) -> MinNormTarget:
    """Rebuild the ``MinNormTarget`` from the W0 and a stored in a target file and its data.

    Recomputes the pattern, G and alpha, then checks that W* matches the stored ``W_star`` to
    ``W_STAR_RTOL`` (relative, Frobenius); raises ValueError naming what does not match.
    """
    missing = [name for name in TARGET_VARIABLES if name not in ds.variables]
    if missing:
        raise ValueError(f"target file lacks variable(s) {', '.join(missing)}")
    if "bias" not in ds.attrs:
        raise ValueError("target file lacks the attribute 'bias'")
    Xt = augment_inputs(data.X_train.to(torch.float64), bool(ds.attrs["bias"]))
    W0 = torch.from_numpy(np.asarray(ds["W0"].values, dtype=np.float64))
    a = torch.from_numpy(np.asarray(ds["a"].values, dtype=np.float64))
    if W0.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"target file weight_dim {W0.shape[1]} does not match the data's input dimension "
            f"{Xt.shape[1]} (bias={bool(ds.attrs['bias'])})"
        )
    if ds.sizes.get("train") != Xt.shape[0]:
        raise ValueError(
            f"target file has {ds.sizes.get('train')} train points, the data {Xt.shape[0]}"
        )
    target = min_norm_target(Xt, data.y_train, W0, a)
    stored = torch.from_numpy(np.asarray(ds["W_star"].values, dtype=np.float64))
    if stored.shape != target.W_star.shape:
        raise ValueError(
            f"stored W_star has shape {tuple(stored.shape)}, expected {tuple(target.W_star.shape)}"
        )
    mismatch = float(torch.linalg.vector_norm(target.W_star - stored)) / max(
        float(torch.linalg.vector_norm(stored)), torch.finfo(torch.float64).tiny
    )
    if not mismatch <= W_STAR_RTOL:
        raise ValueError(
            f"W_star recomputed from the file's W0 and a differs from the stored W_star by "
            f"{mismatch:.2e} (relative; allowed {W_STAR_RTOL:.0e}): "
            "wrong data file for this target?"
        )
    return target
