"""H, the infinite-width limit of the empirical NTK Gram for any registered activation, and kernel
regression with it.

With first-layer weights w ~ N(0, kappa^2 I) and output weights a_r = +-1, the Gram
``minnorm.core.family_network.empirical_ntk_gram`` tends (law of large numbers over the m
neurons) to H = H_W + [train_output] H_a, with the gradient term
H_W(x, x') = (x . x') E[s'(u) s'(v)] and the output term H_a(x, x') = E[s(u) s(v)],
u = w . x, v = w . x'. Closed forms where the registry has them, the trapezoid rule of
``minnorm.core.pair_quadrature`` otherwise.
"""

from __future__ import annotations

import torch

from minnorm.core.activations import Activation
from minnorm.core.pair_quadrature import default_spacing, pair_expectation
from minnorm.core.theory import kernel_regression_predict


def quadrature_spacing(
    activation: Activation, Xa: torch.Tensor, Xb: torch.Tensor | None, *, kappa: float
) -> float:
    """The trapezoid rule's node spacing for ``activation`` on these inputs: scaled by the largest
    standard deviation kappa |x| of a pre-activation. Raises for activations that are not smooth."""
    half_width = activation.spec.analytic_half_width
    if half_width is None:
        raise ValueError(f"activation {activation.name!r} is not smooth: no quadrature for it")
    norms = torch.linalg.vector_norm(Xa.to(torch.float64), dim=1)
    if Xb is not None:
        norms = torch.cat([norms, torch.linalg.vector_norm(Xb.to(torch.float64), dim=1)])
    sigma_max = kappa * float(norms.max()) if len(norms) else 0.0
    return default_spacing(sigma_max, half_width)


def _check_inputs(Xa: torch.Tensor, Xb: torch.Tensor | None, kappa: float) -> None:
    other = Xa if Xb is None else Xb
    if Xa.ndim != 2 or other.ndim != 2 or Xa.shape[1] != other.shape[1]:
        raise ValueError(
            f"need Xa (na, p) and Xb (nb, p), got {tuple(Xa.shape)} and {tuple(other.shape)}"
        )
    if not kappa > 0:
        raise ValueError(f"kappa must be positive, got {kappa}")


def gradient_term(
    Xa: torch.Tensor,
    Xb: torch.Tensor | None,
    activation: Activation,
    *,
    kappa: float,
    quadrature: bool = False,
    spacing: float | None = None,
) -> torch.Tensor:
    """H_W(x_a, x_b) = (x_a . x_b) E[s'(u) s'(v)]: (na, nb) float64.

    Xa: (na, p), Xb: (nb, p) augmented inputs (``None``: Xb = Xa). ``quadrature``: use the
    trapezoid rule even where a closed form exists (to check one against the other);
    ``spacing``: its node spacing (default ``quadrature_spacing``).
    """
    _check_inputs(Xa, Xb, kappa)
    Xa = Xa.to(torch.float64)
    other = Xa if Xb is None else Xb.to(torch.float64)
    closed = activation.spec.gradient_kernel
    if closed is not None and not quadrature:
        return closed(Xa, other, kappa, activation.leak)
    h = quadrature_spacing(activation, Xa, Xb, kappa=kappa) if spacing is None else spacing
    expectation = pair_expectation(activation.derivative, Xa, Xb, kappa=kappa, spacing=h)
    return (Xa @ other.T) * expectation


def output_term(
    Xa: torch.Tensor,
    Xb: torch.Tensor | None,
    activation: Activation,
    *,
    kappa: float,
    quadrature: bool = False,
    spacing: float | None = None,
) -> torch.Tensor:
    """H_a(x_a, x_b) = E[s(u) s(v)]: (na, nb) float64; arguments as for ``gradient_term``."""
    _check_inputs(Xa, Xb, kappa)
    Xa = Xa.to(torch.float64)
    other = Xa if Xb is None else Xb.to(torch.float64)
    closed = activation.spec.output_kernel
    if closed is not None and not quadrature:
        return closed(Xa, other, kappa, activation.leak)
    h = quadrature_spacing(activation, Xa, Xb, kappa=kappa) if spacing is None else spacing
    return pair_expectation(activation.value, Xa, Xb, kappa=kappa, spacing=h)


def limit_kernel(
    Xa: torch.Tensor,
    Xb: torch.Tensor | None,
    activation: Activation,
    *,
    kappa: float,
    train_output: bool,
    quadrature: bool = False,
    spacing: float | None = None,
) -> torch.Tensor:
    """H = H_W + [train_output] H_a: (na, nb) float64, the m -> infinity limit of the Gram.

    For relu with the output layer fixed this is ``minnorm.core.kernels.infinite_width_kernel``
    itself (independent of kappa).
    """
    H = gradient_term(Xa, Xb, activation, kappa=kappa, quadrature=quadrature, spacing=spacing)
    if train_output:
        H = H + output_term(Xa, Xb, activation, kappa=kappa, quadrature=quadrature, spacing=spacing)
    return H


def limit_kernel_regression(
    Xt_test: torch.Tensor,
    Xt_train: torch.Tensor,
    y: torch.Tensor,
    activation: Activation,
    *,
    kappa: float,
    train_output: bool,
) -> torch.Tensor:
    """Kernel regression h(x)^T H^-1 y with the limit kernel: (k,) for Xt_test: (k, p),
    Xt_train: (n, p) augmented, y: (n,) (``minnorm.core.theory.kernel_regression_predict``)."""
    H_train = limit_kernel(Xt_train, None, activation, kappa=kappa, train_output=train_output)
    H_test = limit_kernel(Xt_test, Xt_train, activation, kappa=kappa, train_output=train_output)
    return kernel_regression_predict(H_test, H_train, y)
