import math

import numpy as np
import pytest
import torch

from minnorm.core.kernels import infinite_width_kernel
from minnorm.core.model import augment_inputs
from minnorm.core.target import SingularGramWarning
from minnorm.core.theory import (
    arora_bound,
    kernel_regression_predict,
    kernel_spectrum,
    quadratic_form_inv,
)


def random_psd(n: int, eigenvalues: list[float], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return Q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ Q.T


def sphere_problem(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    X = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return X, torch.sin(3 * X[:, 0]) + X[:, 1] ** 2


def test_quadratic_form_against_numpy():
    A = random_psd(4, [0.25, 1.0, 3.0, 9.0], seed=0)
    y = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    expected = float(y.numpy() @ np.linalg.inv(A.numpy()) @ y.numpy())
    assert quadratic_form_inv(A, y) == pytest.approx(expected, rel=1e-12)


def test_quadratic_form_on_singular_matrix_uses_pseudo_inverse():
    A = random_psd(3, [0.0, 1.0, 4.0], seed=1)
    y = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with pytest.warns(SingularGramWarning, match="lambda_min"):
        value = quadratic_form_inv(A, y)
    expected = float(y.numpy() @ np.linalg.pinv(A.numpy(), rcond=1e-10) @ y.numpy())
    assert value == pytest.approx(expected, rel=1e-10)


def test_arora_bound_closed_form_for_scaled_identity():
    y = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    H = 0.2 * torch.eye(5, dtype=torch.float64)
    # y^T H^-1 y = |y|^2 / 0.2 = 25, so sqrt(2 * 25 / 5).
    assert arora_bound(quadratic_form_inv(H, y), 5) == pytest.approx(math.sqrt(10.0), rel=1e-14)
    assert arora_bound(-1e-17, 5) == 0.0  # rounding below zero is no bound below zero


def test_kernel_regression_with_h_interpolates_training_labels():
    X, y = sphere_problem(40, seed=2)
    Xt = augment_inputs(X, True)
    H = infinite_width_kernel(Xt, Xt)
    torch.testing.assert_close(kernel_regression_predict(H, H, y), y, rtol=0, atol=1e-8)
    # Off the training set: the same coefficients, checked against a numpy solve.
    X_test, _ = sphere_problem(7, seed=3)
    K = infinite_width_kernel(augment_inputs(X_test, True), Xt)
    expected = K.numpy() @ np.linalg.solve(H.numpy(), y.numpy())
    np.testing.assert_allclose(
        kernel_regression_predict(K, H, y).numpy(), expected, rtol=0, atol=1e-9
    )
    with pytest.raises(ValueError, match="K_test_train"):
        kernel_regression_predict(K.T, H, y)


def test_kernel_spectrum_orders_and_decomposes_the_labels():
    X, y = sphere_problem(30, seed=4)
    H = infinite_width_kernel(X, X)
    eigenvalues, projections = kernel_spectrum(H, y)
    assert torch.all(eigenvalues[:-1] >= eigenvalues[1:])
    np.testing.assert_allclose(
        eigenvalues.numpy(), np.sort(np.linalg.eigvalsh(H.numpy()))[::-1], rtol=1e-10
    )
    # Parseval, and y^T H^-1 y = sum (v_i . y)^2 / lambda_i.
    assert float(projections @ projections) == pytest.approx(float(y @ y), rel=1e-12)
    assert float(torch.sum(projections**2 / eigenvalues)) == pytest.approx(
        quadratic_form_inv(H, y), rel=1e-8
    )
    # Labels equal to the bottom eigenvector put all their weight on the last entry.
    worst = torch.linalg.eigh(H).eigenvectors[:, 0]
    _, worst_projections = kernel_spectrum(H, worst)
    assert float(worst_projections[-1]) == pytest.approx(1.0, rel=1e-12)
    assert float(worst_projections[:-1].max()) < 1e-10
