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


# Splitting constant of Veltkamp's algorithm for float64 (2^27 + 1): splits a double into two
# halves of 26 bits, whose products are exact (Dekker 1971).
_VELTKAMP = 134217729.0


def _two_product(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dekker's error-free product: (p, e) with p = fl(a b) and a b = p + e exactly."""

    def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = _VELTKAMP * x
        hi = c - (c - x)
        return hi, x - hi

    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


# Number of Ozaki slices: each holds 53 - rho (>= 14 for p <= 2^20) bits of a row on a common
# scale, so four slices reach 2^-56 (p = 2^20) to 2^-96 (p <= 8) below the row's largest entry;
# what is left is kept as a fifth term, whose products are rounded only at that level.
_SLICES = 4


def _two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Knuth's error-free sum: (s, e) with s = fl(a + b) and a + b = s + e exactly."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _slices(X: torch.Tensor) -> list[torch.Tensor]:
    """Rows of X: (n, p) as a sum of `_SLICES` slices and a remainder (Ozaki's error-free
    splitting): within a slice every row is an integer of at most 53 - rho bits on one per-row
    unit, so a product of two slices summed over p entries is exact when
    106 - 2 rho + log2(p) <= 53, in any summation order (hence also through BLAS).

    With the row's largest remaining |x| <= 2^E and sigma = 2^(E + rho), a slice is
    fl(fl(x + sigma) - sigma) and leaves x minus it exactly.
    """
    rho = math.ceil((54 + math.log2(max(X.shape[1], 1))) / 2)
    out, rest = [], X
    for _ in range(_SLICES):
        top = rest.abs().amax(dim=1, keepdim=True)
        exponent = torch.ceil(torch.log2(torch.where(top > 0, top, torch.ones_like(top))))
        sigma = torch.where(top > 0, torch.exp2(exponent + rho), torch.zeros_like(top))
        piece = (rest + sigma) - sigma
        out.append(piece)
        rest = rest - piece
    return [*out, rest]


def _accurate_sum(terms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The sum of `terms` (equal shapes) as hi + lo, accurate to ~eps^2 of the largest term
    (Ogita, Rump and Oishi's Sum2: the rounding error of every addition is carried along)."""
    hi, lo = terms[0], torch.zeros_like(terms[0])
    for term in terms[1:]:
        hi, err = _two_sum(hi, term)
        lo = lo + err
    return _two_sum(hi, lo)


def _accurate_dots(Xa: torch.Tensor, Xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Xa @ Xb.T as an unevaluated sum hi + lo, to ~eps^2 |x_a| |x_b|: the sum of the exact
    slice-by-slice products (`_slices`)."""
    sa, sb = _slices(Xa), _slices(Xb)
    return _accurate_sum([a @ b.T for a in sa for b in sb])


def _accurate_squares(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|x_i|^2 of the rows of X: (n, p) as hi + lo, bitwise equal to the diagonal of
    `_accurate_dots(X, X)` (the same exact slice products, summed in the same order)."""
    sx = _slices(X)
    return _accurate_sum([(a * b).sum(dim=1) for a in sx for b in sx])


def _wedge_squared(
    na: tuple[torch.Tensor, torch.Tensor],
    nb: tuple[torch.Tensor, torch.Tensor],
    dot: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """|x_a|^2 |x_b|^2 - (x_a . x_b)^2 (= |x_a|^2 |x_b|^2 sin^2 theta), from hi + lo operands,
    without the cancellation of the plain formula near theta = 0 and pi; exactly 0 for equal
    inputs, never negative."""
    a_hi, a_lo = na[0][:, None], na[1][:, None]
    b_hi, b_lo = nb[0][None, :], nb[1][None, :]
    d_hi, d_lo = dot
    p1, e1 = _two_product(a_hi, b_hi)
    p2, e2 = _two_product(d_hi, d_hi)
    # Equal inputs give bitwise equal operands, so every bracket below is exactly 0 for them.
    cross = (a_hi * b_lo + a_lo * b_hi) - 2 * (d_hi * d_lo)
    rest = (a_lo * b_lo - d_lo * d_lo) + (e1 - e2) + cross
    return torch.clamp((p1 - p2) + rest, min=0.0)


def infinite_width_kernel(Xa: torch.Tensor, Xb: torch.Tensor) -> torch.Tensor:
    """Infinite-width NTK H(x_a, x_b) = E_w[x_a . x_b 1{w.x_a > 0} 1{w.x_b > 0}].

    Xa: (na, p), Xb: (nb, p), already augmented by the caller when a bias is used; any norms.
    Returns (na, nb) = x_a . x_b (pi - theta_ab) / (2 pi), theta_ab the angle between x_a and x_b
    (Arora et al. 2019 for unit norms; the expectation only sees directions, so it holds for any
    norm and any isotropic Gaussian w). A zero input gives a zero row.

    Accurate to a few units in the last place everywhere: x_a . x_b and the squared norms are
    summed from exact partial products (`_slices`, `_accurate_sum`), and pi - theta =
    atan2(|x_a||x_b| sin theta, -x_a . x_b) takes |x_a||x_b| sin theta from the cancellation-free
    `_wedge_squared` instead of an arccos of a rounded cosine (whose error near cos = +-1 is
    ~1e-8). Equal inputs give exactly (x . x) / 2 (sin theta = 0, pi - theta = pi).
    """
    if Xa.ndim != 2 or Xb.ndim != 2 or Xa.shape[1] != Xb.shape[1]:
        raise ValueError(
            f"need Xa (na, p) and Xb (nb, p), got {tuple(Xa.shape)} and {tuple(Xb.shape)}"
        )
    dot = _accurate_dots(Xa, Xb)
    sin_scaled = torch.sqrt(_wedge_squared(_accurate_squares(Xa), _accurate_squares(Xb), dot))
    dots = dot[0] + dot[1]
    # (pi - theta) / (2 pi): exactly 1/2 when sin theta = 0 and x_a . x_b > 0.
    return dots * (torch.atan2(sin_scaled, -dots) / (2 * math.pi))
