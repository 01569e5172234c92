"""The GD step's gradient and loss written as torch formulas: by hand (no autograd), for
torch.compile to fuse, and the reference the C++ kernel repeats (``streamed_kernel``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from minnorm.core.model import readout

LOSSES: tuple[str, ...] = ("half_sum", "mean")


def loss_value(f: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The training loss of outputs f: (..., n) against labels y: (n,): a 0-d tensor for one run,
    (S,) for a batch of S runs (each run's own loss).

    ``half_sum`` = 1/2 sum_i (f_i - y_i)^2 (its GD step is w <- w - lr J (f - y)); ``mean`` =
    1/n sum_i (f_i - y_i)^2 (PyTorch's MSELoss default).
    """
    if loss == "half_sum":
        return 0.5 * torch.sum((f - y) ** 2, -1)
    if loss == "mean":
        return torch.mean((f - y) ** 2, -1)
    raise ValueError(f"training.loss must be one of {LOSSES}, got {loss!r}")


def residual_scale(loss: str, n: int) -> float:
    """d loss / d f_i divided by (f_i - y_i): 1 for ``half_sum``, 2/n for ``mean``."""
    if loss == "half_sum":
        return 1.0
    if loss == "mean":
        return 2.0 / n
    raise ValueError(f"training.loss must be one of {LOSSES}, got {loss!r}")


def analytic_gradient(
    W: torch.Tensor, Xt: torch.Tensor, y: torch.Tensor, a: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dW: (..., m, p), L: (...)) of the squared loss, written out by hand.

    W: (m, p) for one run or (S, m, p) for S runs on the same data, Xt: (n, p) augmented inputs,
    y: (n,), a: (m,) or (S, m), scale: 0-d tensor from ``residual_scale``. With Z = Xt W^T and
    r = scale (f - y): dL/dw_r = m^-1/2 a_r sum_i 1{z_ir > 0} r_i x~_i and
    L = scale/2 sum_i (f_i - y_i)^2, for each run of a batch separately. The strict inequality
    matches autograd's relu'(0) = 0. Written so that torch.compile can fuse the passes over the
    (n, m) matrix.
    """
    inv_sqrt_m = W.shape[-2] ** -0.5
    Z = Xt @ W.mT
    f = readout(Z, a)
    err = f - y
    r = err * scale
    back = torch.where(Z > 0, r[..., None], torch.zeros_like(Z))
    return (back.mT @ Xt) * (a * inv_sqrt_m)[..., None], 0.5 * scale * torch.sum(err * err, -1)


# Largest p = d (+1 with a bias) for which the fused step uses ``streamed_gradient``; above it the
# unrolled sums over p cost more than the matrix products of ``analytic_gradient``. Measured at
# n = 100, m = 10^4, 1 thread of an AMD EPYC (`bench_fused.py --crossover`, BENCHMARKS.md): the
# streamed step is 2.3x / 1.6x faster (float32 / float64) at p = 11, 0.8x / 1.0x at p = 16 and
# 0.4x / 0.5x at p = 32, and its compilation grows to minutes at p = 65. The C++ kernel
# (``streamed_kernel``) is built for every p up to this one.
STREAMED_MAX_P = 12

# Widths above which the streamed formula computes f block by block over m (``STREAMED_BLOCK``
# neurons at a time): unblocked, the loop for f re-reads all of W (p m values) for each of the n
# points, which leaves the cache once W outgrows it. Measured at n = 100, p = 6, float64, one
# thread of an AMD EPYC, each width in its own process (`bench_fused.py --widths`, BENCHMARKS.md):
# unblocked 138 ns per neuron and step at m = 10^4, 253 at 2^19 and 305 at 2^20; blocked by 512,
# 114-129 at every width from 2^15 to 2^19. The threshold is the largest default width (2^14), so
# every run of the default config keeps the unblocked formula's iterates bit for bit (blocking
# reorders the sum over m, a ~1e-16 relative change). Where the C++ kernel runs (float64, one
# thread), no width is blocked this way: the kernel blocks its loops without reordering the sums.
STREAMED_BLOCK_ABOVE_M = 16_384
# 512 neurons x p <= 12 weights x 8 bytes <= 48 KiB of W per block: in L1/L2 while the block is
# read once per point (best of 256, 512, 1024, 2048, 8192 at m = 2^19, p = 6).
STREAMED_BLOCK = 512


def streamed_gradient(
    Wt: torch.Tensor,
    Xt: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor,
    scale: torch.Tensor,
    block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``analytic_gradient`` rewritten for small p so that, compiled, it never stores an (n, m)
    matrix.

    Wt: (p, m) contiguous, i.e. W transposed, or (S, p, m) for S runs on the same data (a seed
    batch); Xt: (n, p) row-major augmented inputs; y: (n,); a: (m,) or (S, m); scale: 0-d tensor
    from ``residual_scale``. Returns (dL/dW: (..., m, p) as a transposed view of a (..., p, m)
    tensor, L: (...)). Z = Xt W^T is written as p broadcast products so that inductor fuses it
    into its readers: one loop computes f (reduction over m, contiguous loads of Wt), a second
    recomputes Z and reduces over n for each neuron, vectorised over m (the loads of Xt along n
    are strided, which steers inductor's vectorisation to m). The runs of a batch are independent
    and each sees the same loops as alone: the batched gradient of every run equals its unbatched
    one bit for bit (tests/training/test_seed_batch.py). Eager, it is slow and allocates many (n, m)
    temporaries; it is meant to be compiled.

    block: None (f summed over all m at once) or a number of neurons B: f is then summed over
    m // B blocks, block-major (Z as (..., m // B, n, B), so the compiled loop reads one block of
    W for all n points before the next), plus the m % B remaining neurons; the same f up to the
    order of the additions. The backward loop is the same either way.
    """
    p, m = Wt.shape[-2:]
    batch = Wt.shape[:-2]
    n = Xt.shape[0]

    def preactivations(V: torch.Tensor = Wt, X: torch.Tensor = Xt) -> torch.Tensor:
        """Z: (..., n', m') for columns V: (..., p, m') of Wt and points X: (n', p)."""
        Z = X[:, 0, None] * V[..., 0, None, :]
        for k in range(1, p):
            Z = Z + X[:, k, None] * V[..., k, None, :]
        return Z

    c = a * m**-0.5

    def outputs(X: torch.Tensor) -> torch.Tensor:
        """f at the points X: (n', p) -> (..., n')."""
        if block is None or block >= m:
            return (torch.relu(preactivations(Wt, X)) * c[..., None, :]).sum(-1)
        nb, count = m // block, X.shape[0]
        head = nb * block
        Zb = X[:, 0].view(1, count, 1) * Wt[..., 0, :head].reshape(
            *batch, nb, 1, block
        )  # (..., nb, n', B)
        for k in range(1, p):
            Zb = Zb + X[:, k].view(1, count, 1) * Wt[..., k, :head].reshape(*batch, nb, 1, block)
        f = (torch.relu(Zb) * c[..., :head].reshape(*batch, nb, 1, block)).sum(-1).sum(-2)
        if head < m:
            f = f + (torch.relu(preactivations(Wt[..., head:], X)) * c[..., None, head:]).sum(-1)
        return f

    if block is not None and block < m:
        f = outputs(Xt)
    else:
        # The points two at a time: the compiled loop over m then loads each weight once for two
        # points (the forward pass 1.9x faster at n = 100, p = 6, m = 10^4), and every f_i is the
        # same sum in the same order as one point at a time (bit for bit). (The blocked loop reads
        # its block of W from the L1 cache already; paired, it was not faster.)
        pairs = n // 2
        f = torch.stack(
            [outputs(Xt[0 : 2 * pairs : 2]), outputs(Xt[1 : 2 * pairs : 2])], -1
        ).reshape(*batch, 2 * pairs)
        if n % 2:
            f = torch.cat([f, outputs(Xt[n - 1 :])], -1)
    err = f - y
    r = err * scale
    back = torch.where(preactivations() > 0, r[..., None], 0.0)
    grad_t = torch.stack([(back * Xt[:, k, None]).sum(-2) * c for k in range(p)], -2)
    return grad_t.mT, 0.5 * scale * torch.sum(err * err, -1)


# Inductor settings for ``streamed_gradient``: never store a pointwise (n, m) intermediate that has
# several readers, so that the backward pass recomputes Z from W and Xt instead of reading an
# (n, m) buffer written by the forward pass.
STREAMED_INDUCTOR_OPTIONS: dict[str, str | int | bool | Callable[..., Any]] = {
    "realize_reads_threshold": 1_000_000,
    "realize_opcount_threshold": 1_000_000,
    "realize_acc_reads_threshold": 1_000_000,
}
