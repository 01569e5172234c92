"""The numbers the convergence and generalization theorems are stated in."""

from __future__ import annotations

import math

import torch

from minnorm.core.target import DEFAULT_RTOL, solve_psd


def _symmetric64(A: torch.Tensor) -> torch.Tensor:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"need a square matrix (n, n), got {tuple(A.shape)}")
    A = A.to(torch.float64)
    return (A + A.T) / 2


def quadratic_form_inv(A: torch.Tensor, y: torch.Tensor, *, rtol: float = DEFAULT_RTOL) -> float:
    """y^T A^-1 y for PSD A: (n, n) and y: (n,), via ``solve_psd`` (pseudo-inverse if singular).

    With A = G and y - f0 this is ||W* - W0||^2; with A = H it is Arora et al.'s y^T H^-1 y.
    """
    y64 = y.to(torch.float64)
    solution, _ = solve_psd(A, y64, rtol=rtol)
    return float(y64 @ solution)


def arora_bound(yHy: float, n: int) -> float:
    """sqrt(2 y^T H^-1 y / n), the leading term of Arora et al. (2019)'s generalization bound.

    yHy: ``quadratic_form_inv(H, y)`` for the infinite-width Gram H: (n, n) and labels y: (n,);
    a slightly negative value from rounding counts as 0.
    """
    return math.sqrt(2 * max(float(yHy), 0.0) / n)


def kernel_regression_predict(
    K_test_train: torch.Tensor, K_train: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Kernel regression h(x)^T K^-1 y: K_test_train (k, n), K_train (n, n), y (n,) -> (k,)."""
    if (
        K_test_train.ndim != 2
        or K_test_train.shape[1] != K_train.shape[0]
        or y.shape != (K_train.shape[0],)
    ):
        raise ValueError(
            "need K_test_train (k, n), K_train (n, n), y (n,); got "
            f"{tuple(K_test_train.shape)}, {tuple(K_train.shape)}, {tuple(y.shape)}"
        )
    coefficients, _ = solve_psd(K_train, y)
    return K_test_train.to(torch.float64) @ coefficients


def kernel_spectrum(H: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues of H: (n, n) in descending order (n,) and |v_i . y| (n,) for its eigenvectors.

    Arora et al. (2019): the residual after k GD steps is about
    sqrt(sum_i (1 - eta lambda_i)^(2k) (v_i . y)^2), so labels on top eigenvectors train fast.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(_symmetric64(H))
    order = torch.flip(torch.arange(len(eigenvalues)), dims=(0,))
    projections = (eigenvectors.T @ y.to(torch.float64)).abs()
    return eigenvalues[order], projections[order]
