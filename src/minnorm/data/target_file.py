"""The per-(width, seed) target file: W0, a, theta* = (W*, a*), the Gram matrices and the theory
numbers, for any registered activation with the output layer fixed or trained (issue 29).

The papers' network (relu, a fixed) is built by `minnorm.core.target.min_norm_target` and
`infinite_width_kernel` exactly as before; every other network by
`minnorm.core.family_target.family_min_norm_target` and `minnorm.core.limit_kernels.limit_kernel`
at the config's kappa.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from minnorm.core.activations import DEFAULT_LEAK, get_activation
from minnorm.core.family_target import FamilyTarget, family_min_norm_target
from minnorm.core.kernels import infinite_width_kernel
from minnorm.core.limit_kernels import limit_kernel
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
    "a": (("neuron",), "initial output weights a0 (+-1; fixed unless train_output)", "1"),
    "W_star": (("neuron", "weight_dim"), "linearized min-norm interpolating weights W*", "1"),
    "a_star": (("neuron",), "output weights a* of theta* (= a0 when the output is fixed)", "1"),
    "G": (("train", "train2"), "empirical NTK Gram matrix at init J0^T J0", "1"),
    "H": (("train", "train2"), "infinite-width NTK Gram matrix", "1"),
    "H_test": (("test", "train"), "infinite-width NTK between test and train points", "1"),
    "H_eigenvalues": (("eig",), "eigenvalues of H, descending", "1"),
    "y_projections": (("eig",), "|v_i . y| for the eigenvectors of H", "1"),
    "lambda_min_G": ((), "smallest eigenvalue of G", "1"),
    "lambda_min_H": ((), "smallest eigenvalue of H", "1"),
    "cond_G": ((), "condition number of G", "1"),
    "yGy": ((), "(y - f0)^T G^-1 (y - f0) = ||theta* - theta0||^2", "1"),
    "yHy": ((), "y^T H^-1 y", "1"),
    "arora_bound": (
        (),
        "Arora et al. bound sqrt(2 y^T H^-1 y / n) (NaN unless relu with a fixed output layer)",
        "1",
    ),
    "target_norm": ((), "||theta* - theta0|| (theta = W, or (W, a) when a is trained)", "1"),
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


def limit_kernels(
    data: Dataset,
    *,
    bias: bool,
    kappa: float,
    activation: str = "relu",
    leak: float = DEFAULT_LEAK,
    train_output: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(H: (n, n), H_test: (n_test, n)), the m -> infinity Gram of the network on the data's
    augmented inputs. They depend on the data draw and the model settings but not on the width or
    the seed: a data job computes them once per draw and passes them to `build_target_dataset`.
    relu with a fixed output layer: `infinite_width_kernel` (kappa-free), as always."""
    Xt = augment_inputs(data.X_train.to(torch.float64), bias)
    Xt_test = augment_inputs(data.X_test.to(torch.float64), bias)
    if activation == "relu" and not train_output:
        return infinite_width_kernel(Xt, Xt), infinite_width_kernel(Xt_test, Xt)
    act = get_activation(activation, leak=leak)
    H = limit_kernel(Xt, None, act, kappa=kappa, train_output=train_output)
    H_test = limit_kernel(Xt_test, Xt, act, kappa=kappa, train_output=train_output)
    return H, H_test


def build_target_dataset(
    data: Dataset,
    *,
    width: int,
    seed: int,
    bias: bool,
    kappa: float,
    activation: str = "relu",
    leak: float = DEFAULT_LEAK,
    train_output: bool = False,
    kernels: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> xr.Dataset:
    """Initialise the network for (width, seed) and compute theta* and the kernel quantities.

    data: train inputs X_train (n, d) and labels y_train (n,). Returns an xarray Dataset with the
    variables of ``TARGET_VARIABLES`` (float64; ``used_pinv`` int8) and attrs bias, kappa, width,
    seed, activation, leak, train_output. H uses the augmented inputs x~ when ``bias``; yHy and
    the bound use the raw labels y. ``kernels``: (H, H_test) of ``limit_kernels`` for these
    settings, when the caller has them already (computed here otherwise).
    """
    X = data.X_train.to(torch.float64)
    y = data.y_train.to(torch.float64)
    Xt = augment_inputs(X, bias)
    W0, a = init_weights(width, Xt.shape[1], kappa, seed=seed)
    paper = activation == "relu" and not train_output
    target: MinNormTarget | FamilyTarget
    if paper:
        target = min_norm_target(Xt, y, W0, a)
        a_star = a
    else:
        act = get_activation(activation, leak=leak)
        target = family_min_norm_target(Xt, y, W0, a, act, train_output=train_output)
        a_star = a if target.a_star is None else target.a_star
    if kernels is None:
        kernels = limit_kernels(
            data, bias=bias, kappa=kappa, activation=activation, leak=leak,
            train_output=train_output,
        )  # fmt: skip
    H, H_test = kernels
    eigenvalues, projections = kernel_spectrum(H, y)
    yHy = quadratic_form_inv(H, y)
    values: dict[str, Any] = {
        "W0": W0,
        "a": a,
        "W_star": target.W_star,
        "a_star": a_star,
        "G": target.G,
        "H": H,
        "H_test": H_test,
        "H_eigenvalues": eigenvalues,
        "y_projections": projections,
        "lambda_min_G": target.info.lambda_min,
        "lambda_min_H": float(eigenvalues[-1]),
        "cond_G": target.info.cond,
        "yGy": target.yGy,
        "yHy": yHy,
        "arora_bound": arora_bound(yHy, len(y)) if paper else float("nan"),
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
        "activation": activation,
        "leak": float(get_activation(activation, leak=leak).leak),
        "train_output": int(train_output),
        "Conventions": CF_CONVENTIONS,
    }
    return xr.Dataset(variables, coords={"eig": eig_coordinate(len(y))}, attrs=attrs)


def load_target(ds: xr.Dataset, data: Dataset) -> MinNormTarget | FamilyTarget:
    """Rebuild the target from the W0 and a stored in a target file and its data.

    The papers' network (attrs activation relu, train_output 0; a file without these attrs is
    one) gives the ``MinNormTarget`` it always gave; any other a ``FamilyTarget``. Recomputes G
    and alpha, then checks that W* (and a*) match the stored ``W_star`` (``a_star``) to
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
    activation = str(ds.attrs.get("activation", "relu"))
    train_output = bool(int(ds.attrs.get("train_output", 0)))
    target: MinNormTarget | FamilyTarget
    if activation == "relu" and not train_output:
        target = min_norm_target(Xt, data.y_train, W0, a)
        a_star = a
    else:
        act = get_activation(activation, leak=float(ds.attrs.get("leak", DEFAULT_LEAK)))
        target = family_min_norm_target(Xt, data.y_train, W0, a, act, train_output=train_output)
        a_star = a if target.a_star is None else target.a_star
    for name, value in (("W_star", target.W_star), ("a_star", a_star)):
        _check_stored(ds, name, value)
    return target


def _check_stored(ds: xr.Dataset, name: str, value: torch.Tensor) -> None:
    """ValueError unless the target file's `name` equals `value` to W_STAR_RTOL (relative)."""
    stored = torch.from_numpy(np.asarray(ds[name].values, dtype=np.float64))
    if stored.shape != value.shape:
        raise ValueError(
            f"stored {name} has shape {tuple(stored.shape)}, expected {tuple(value.shape)}"
        )
    mismatch = float(torch.linalg.vector_norm(value - stored)) / max(
        float(torch.linalg.vector_norm(stored)), torch.finfo(torch.float64).tiny
    )
    if not mismatch <= W_STAR_RTOL:
        raise ValueError(
            f"{name} recomputed from the file's W0 and a differs from the stored {name} by "
            f"{mismatch:.2e} (relative; allowed {W_STAR_RTOL:.0e}): "
            "wrong data file for this target?"
        )
