"""The numbers the convergence and generalization theorems are stated in."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from minnorm.core.target import DEFAULT_RTOL, solve_psd


def _symmetric64(A: torch.Tensor) -> torch.Tensor:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"need a square matrix (n, n), got {tuple(A.shape)}")
    A = A.to(torch.float64)
    return (A + A.T) / 2


def lambda_min(A: torch.Tensor) -> float:
    """Smallest eigenvalue of the symmetric matrix A: (n, n) (lambda_0 when A = H)."""
    return float(torch.linalg.eigvalsh(_symmetric64(A))[0])


def quadratic_form_inv(A: torch.Tensor, y: torch.Tensor, *, rtol: float = DEFAULT_RTOL) -> float:
    """y^T A^-1 y for PSD A: (n, n) and y: (n,), via ``solve_psd`` (pseudo-inverse if singular).

    With A = G and y - f0 this is ||W* - W0||^2; with A = H it is Arora et al.'s y^T H^-1 y.
    """
    y64 = y.to(torch.float64)
    solution, _ = solve_psd(A, y64, rtol=rtol)
    return float(y64 @ solution)


# ARCHITECTURE.md lists the function under this shorter name.
quadratic_form = quadratic_form_inv


def arora_bound(H: torch.Tensor, y: torch.Tensor) -> float:
    """sqrt(2 y^T H^-1 y / n), the leading term of Arora et al. (2019)'s generalization bound."""
    return math.sqrt(2 * max(quadratic_form_inv(H, y), 0.0) / y.shape[0])


def kernel_regression_predict(
    K_test_train: torch.Tensor, K_train: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Kernel regression h(x)^T K^-1 y: K_test_train (k, n), K_train (n, n), y (n,) -> (k,)."""
    if K_test_train.ndim != 2 or K_test_train.shape[1] != K_train.shape[0] or y.shape != (K_train.shape[0],):
        raise ValueError(
            "need K_test_train (k, n), K_train (n, n), y (n,); got "
            f"{tuple(K_test_train.shape)}, {tuple(K_train.shape)}, {tuple(y.shape)}"
        )
    coefficients, _ = solve_psd(K_train, y)
    return K_test_train.to(torch.float64) @ coefficients


def _positive_widths(m: npt.ArrayLike) -> np.ndarray:
    widths = np.asarray(m, dtype=np.float64)
    if not np.all(widths > 0):
        raise ValueError(f"widths must be positive, got {m!r}")
    return widths


def flow_rate(m: npt.ArrayLike) -> np.ndarray:
    """m^-1/4: the width dependence of ||w(t) - w*_L||'s residual under gradient flow.

    Satpathi & Srikant (2021), gradient-flow theorem (kappa = 1); same shape as ``m``.
    """
    return _positive_widths(m) ** -0.25


def gd_rate(m: npt.ArrayLike) -> np.ndarray:
    """m^-1/8: the corresponding residual for discrete gradient descent.

    Satpathi & Srikant (2021), discrete-time theorem with eta = O(c / (d n)^2); same shape as ``m``.
    """
    return _positive_widths(m) ** -0.125


def kernel_spectrum(H: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues of H: (n, n) in descending order (n,) and |v_i . y| (n,) for its eigenvectors.

    Arora et al. (2019): the residual after k GD steps is about
    sqrt(sum_i (1 - eta lambda_i)^(2k) (v_i . y)^2), so labels on top eigenvectors train fast.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(_symmetric64(H))
    order = torch.flip(torch.arange(len(eigenvalues)), dims=(0,))
    projections = (eigenvectors.T @ y.to(torch.float64)).abs()
    return eigenvalues[order], projections[order]
