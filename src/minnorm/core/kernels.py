"""Gram matrices: the empirical NTK at initialisation and its infinite-width limit."""

from __future__ import annotations

import math

import torch

# float32 has a 24-bit significand: every integer up to 2^24 is exact, so 0/1 products summed
# over at most this many neurons give exact counts in any summation order, at twice the float64
# matmul speed (and half the memory).
_EXACT_FLOAT32_COUNT = 2**24


def activation_pattern(Xt: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Which neurons are active on which inputs.

    Xt: (n, p) augmented inputs, W: (m, p). Returns S: (n, m) bool with S_ir = w_r . x~_i > 0.
    The inequality is strict to agree with autograd, whose relu'(0) is 0; ties have
    probability zero under a Gaussian init anyway.
    """
    if Xt.ndim != 2 or W.ndim != 2 or Xt.shape[1] != W.shape[1]:
        raise ValueError(f"need Xt (n, p) and W (m, p), got {tuple(Xt.shape)} and {tuple(W.shape)}")
    return (Xt @ W.T) > 0


def coactivation_counts(Sa: torch.Tensor, Sb: torch.Tensor) -> torch.Tensor:
    """Number of neurons active on both inputs: Sa (na, m) and Sb (nb, m) bool -> (na, nb)
    float64."""
    m = Sa.shape[1]
    dtype = torch.float32 if m <= _EXACT_FLOAT32_COUNT else torch.float64
    return (Sa.to(dtype) @ Sb.to(dtype).T).to(torch.float64)


def ntk_gram(
    Xa: torch.Tensor, Sa: torch.Tensor, Xb: torch.Tensor, Sb: torch.Tensor
) -> torch.Tensor:
    """Empirical NTK Gram of the first layer, from the activation patterns at W0.

    Xa: (na, p), Xb: (nb, p) augmented inputs; Sa: (na, m), Sb: (nb, m) their patterns
    ``activation_pattern(X, W0)``. Returns (na, nb) with entries
    (x~_a . x~_b) / m * #{r : both active} = grad f(x_a) . grad f(x_b) (a_r^2 = 1), in
    O(na nb (m + p)) without forming the Jacobian. G = J0^T J0 is ``ntk_gram(Xt, S, Xt, S)``.
    """
    counts = coactivation_counts(Sa, Sb).to(device=Xa.device, dtype=Xa.dtype)
    return (Xa @ Xb.T) * counts / Sa.shape[1]


def infinite_width_kernel(Xa: torch.Tensor, Xb: torch.Tensor) -> torch.Tensor:
    """Infinite-width NTK H(x_a, x_b) = E_w[x_a . x_b 1{w.x_a > 0} 1{w.x_b > 0}].

    Xa: (na, p), Xb: (nb, p), already augmented by the caller when a bias is used; any norms.
    Returns (na, nb) = x_a . x_b (pi - theta_ab) / (2 pi), theta_ab the angle between x_a and x_b
    (Arora et al. 2019 for unit norms; the expectation only sees directions, so it holds for any
    norm and any isotropic Gaussian w). A zero input gives a zero row.
    """
    if Xa.ndim != 2 or Xb.ndim != 2 or Xa.shape[1] != Xb.shape[1]:
        raise ValueError(
            f"need Xa (na, p) and Xb (nb, p), got {tuple(Xa.shape)} and {tuple(Xb.shape)}"
        )
    dots = Xa @ Xb.T
    norms = (
        torch.linalg.vector_norm(Xa, dim=1)[:, None] * torch.linalg.vector_norm(Xb, dim=1)[None, :]
    )
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    # Rounding can push the cosine just outside [-1, 1], where arccos is NaN.
    cosine = torch.clamp(dots / safe, -1.0, 1.0)
    return dots * (math.pi - torch.arccos(cosine)) / (2 * math.pi)
