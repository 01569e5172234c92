"""Closed forms of the infinite-width kernel terms for relu, leaky relu and erf.

Every function here has the signature ``(Xa, Xb, kappa, leak) -> (na, nb)`` for augmented inputs
Xa: (na, p), Xb: (nb, p), first-layer weights w ~ N(0, kappa^2 I_p) and the leaky slope ``leak``
(ignored by the activations that have none). With u = w . x_a and v = w . x_b they return

- the *gradient term* (x_a . x_b) E[s'(u) s'(v)], the limit of the first layer's NTK Gram
  (the output weights a_r = +-1 have a_r^2 = 1), and
- the *output term* E[s(u) s(v)], the limit of the trained output layer's Gram s(Z) s(Z)^T / m.

Sources: Cho & Saul (2009) for the arc-cosine kernels of degree 0 and 1; Williams (1997) for
the erf kernel; the leaky relu terms follow from s(z) = leak z + (1 - leak) relu(z) and
E[u relu(v)] = E[u v] / 2 (the pair (u, v) is symmetric under (u, v) -> (-u, -v)).
"""

from __future__ import annotations

import math

import torch

from minnorm.core.kernels import infinite_width_kernel


def _check_pair(Xa: torch.Tensor, Xb: torch.Tensor) -> None:
    if Xa.ndim != 2 or Xb.ndim != 2 or Xa.shape[1] != Xb.shape[1]:
        raise ValueError(
            f"need Xa (na, p) and Xb (nb, p), got {tuple(Xa.shape)} and {tuple(Xb.shape)}"
        )


def arc_cosine_degree1(Xa: torch.Tensor, Xb: torch.Tensor) -> torch.Tensor:
    """E[relu(w . x_a) relu(w . x_b)] for w ~ N(0, I_p): (na, nb).

    Equals |x_a| |x_b| (sin t + (pi - t) cos t) / (2 pi), t the angle between x_a and x_b (Cho &
    Saul 2009, their k_1 halved). The derivative of sin t + (pi - t) cos t in t vanishes at
    t = 0 and t = pi, so the ~1e-8 error of arccos near those angles costs only ~1e-16 here.
    A zero input gives a zero row.
    """
    _check_pair(Xa, Xb)
    norms = (
        torch.linalg.vector_norm(Xa, dim=1)[:, None] * torch.linalg.vector_norm(Xb, dim=1)[None, :]
    )
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    cosine = torch.clamp((Xa @ Xb.T) / safe, -1.0, 1.0)
    angle = torch.arccos(cosine)
    return norms * (torch.sin(angle) + (math.pi - angle) * cosine) / (2 * math.pi)


def relu_gradient_kernel(
    Xa: torch.Tensor, Xb: torch.Tensor, kappa: float, leak: float
) -> torch.Tensor:
    """(x_a . x_b) P(u > 0, v > 0): ``infinite_width_kernel``, which does not depend on kappa."""
    _check_pair(Xa, Xb)
    return infinite_width_kernel(Xa, Xb)


def relu_output_kernel(
    Xa: torch.Tensor, Xb: torch.Tensor, kappa: float, leak: float
) -> torch.Tensor:
    """E[relu(u) relu(v)] = kappa^2 ``arc_cosine_degree1``(Xa, Xb) (relu is 1-homogeneous)."""
    return kappa**2 * arc_cosine_degree1(Xa, Xb)


def leaky_relu_gradient_kernel(
    Xa: torch.Tensor, Xb: torch.Tensor, kappa: float, leak: float
) -> torch.Tensor:
    """(x_a . x_b) E[s'(u) s'(v)] for s'(z) = leak + (1 - leak) 1{z > 0}.

    = leak (x_a . x_b) + (1 - leak)^2 (x_a . x_b) P(u > 0, v > 0): at leak = 0 the relu term,
    at leak = 1 the linear kernel x_a . x_b.
    """
    return leak * (Xa @ Xb.T) + (1 - leak) ** 2 * relu_gradient_kernel(Xa, Xb, kappa, leak)


def leaky_relu_output_kernel(
    Xa: torch.Tensor, Xb: torch.Tensor, kappa: float, leak: float
) -> torch.Tensor:
    """E[s(u) s(v)] for s(z) = leak z + (1 - leak) relu(z).

    = leak kappa^2 (x_a . x_b) + (1 - leak)^2 E[relu(u) relu(v)]: the cross terms
    E[u relu(v)] = kappa^2 (x_a . x_b) / 2 add up with leak^2 to leak.
    """
    return leak * kappa**2 * (Xa @ Xb.T) + (1 - leak) ** 2 * relu_output_kernel(Xa, Xb, kappa, leak)


def _scaled_moments(
    Xa: torch.Tensor, Xb: torch.Tensor, kappa: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1 + 2 Var u: (na, 1), 1 + 2 Var v: (1, nb) and 2 Cov(u, v): (na, nb), w ~ N(0, kappa^2 I)."""
    _check_pair(Xa, Xb)
    k2 = kappa**2
    var_a = 1 + 2 * k2 * torch.sum(Xa * Xa, dim=1)[:, None]
    var_b = 1 + 2 * k2 * torch.sum(Xb * Xb, dim=1)[None, :]
    return var_a, var_b, 2 * k2 * (Xa @ Xb.T)


def erf_gradient_kernel(
    Xa: torch.Tensor, Xb: torch.Tensor, kappa: float, leak: float
) -> torch.Tensor:
    """(x_a . x_b) E[erf'(u) erf'(v)] = (x_a . x_b) (4 / pi) det(I + 2 Sigma)^(-1/2).

    erf'(z) = 2 pi^-1/2 exp(-z^2) and E[exp(-u^2 - v^2)] = det(I + 2 Sigma)^(-1/2) for the 2 x 2
    covariance Sigma of (u, v); det(I + 2 Sigma) >= 1, so nothing cancels.
    """
    var_a, var_b, cov2 = _scaled_moments(Xa, Xb, kappa)
    determinant = var_a * var_b - cov2**2
    return (Xa @ Xb.T) * (4 / math.pi) / torch.sqrt(determinant)


def erf_output_kernel(
    Xa: torch.Tensor, Xb: torch.Tensor, kappa: float, leak: float
) -> torch.Tensor:
    """E[erf(u) erf(v)] = (2 / pi) arcsin(2 Cov(u, v) / sqrt((1 + 2 Var u)(1 + 2 Var v)))
    (Williams 1997); the argument stays strictly inside (-1, 1)."""
    var_a, var_b, cov2 = _scaled_moments(Xa, Xb, kappa)
    return (2 / math.pi) * torch.arcsin(cov2 / torch.sqrt(var_a * var_b))
