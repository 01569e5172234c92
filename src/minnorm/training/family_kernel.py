"""The GD step of the issue-29 networks (softplus, tanh, erf, leaky_relu, and relu with its output
layer trained) as a C++ kernel with AVX-512 (``csrc/family_kernel.cpp``), the output layer fixed
or trained.

The compiled family formula (``family_step.family_streamed_gradient``) evaluates the activation
twice per point and neuron and step: s for f, then s' again once the residuals are known, each a
call of torch's vectorised exp, log1p, erf or sigmoid. The kernel evaluates s and s' once (for
softplus and tanh from one shared exponential; SLEEF's functions, the vector math library inside
torch), keeps s' (and s when a is trained) in an (n, m) buffer, and forms the gradients from it
once the residuals are known: 8 bytes per point and neuron written and read once per step,
cheaper than a second evaluation (BENCHMARKS.md).

Its sums run in another order than the compiled formula's and use fused multiply-adds, so its
iterates agree with the formula's to rounding (relative ~1e-15 per step), not bit for bit
(``tests/training/test_family_kernel.py``). It is built for AVX-512 only, on CPUs where torch's
capability is AVX-512; elsewhere the family step stays the compiled formula.
"""

from __future__ import annotations

import torch

from minnorm.training import streamed_kernel
from minnorm.training.gradient_formulas import STREAMED_MAX_P

# The activations the kernel evaluates, by the codes of csrc/family_kernel.h (enum Family);
# relu is leaky_relu with slope 0.
ACTIVATION_CODES: dict[str, int] = {"softplus": 0, "tanh": 1, "erf": 2, "leaky_relu": 3, "relu": 3}
# The one instruction set it is built for.
ISA = "avx512"
# Neurons per block of its buffers (csrc/family_kernel.h: kFamilyBlock).
BLOCK = 256
# The most the kernel's buffers (``buffer_doubles``) may hold, in bytes. Past it (for the smooth
# activations n m > 2^25 with a fixed output layer) the compiled formula, which keeps none.
MAX_BUFFER_BYTES = 256 * 2**20


def buffer_doubles(activation: str, n: int, m: int, train_output: bool) -> tuple[int, int]:
    """The doubles of the kernel's buffers (D, S) for n points and m neurons (m rounded up to
    whole blocks): s' per point and neuron in D, and s in S when a is trained; for leaky_relu
    and relu only the pattern, a bit per point and neuron in D, and nothing in S
    (csrc/family_kernel.h)."""
    cells = n * -(-m // BLOCK) * BLOCK
    if ACTIVATION_CODES[activation] == ACTIVATION_CODES["leaky_relu"]:
        return -(-cells // 64), 0
    return cells, cells if train_output else 0


def supports(activation: str, n: int, m: int, p: int, train_output: bool) -> bool:
    """Whether the kernel computes this network's step (on a CPU that runs it): an activation of
    ``ACTIVATION_CODES``, 1 <= p <= ``STREAMED_MAX_P`` and buffers within
    ``MAX_BUFFER_BYTES``."""
    return (
        activation in ACTIVATION_CODES
        and 1 <= p <= STREAMED_MAX_P
        and 8 * sum(buffer_doubles(activation, n, m, train_output)) <= MAX_BUFFER_BYTES
    )


class FamilyKernel:
    """The step of one run: (Wt: (p, m) contiguous, a: (m,), Xt: (n, p) contiguous, y: (n,),
    scale: float) -> (dL/dW: (m, p) as a transposed view of a (p, m) tensor, dL/da: (m,) or None
    when the output layer is fixed, L: 0-d), all float64 on the CPU; ``leak``: leaky_relu's slope
    (ignored by the other activations; relu's is 0).

    Raises ``ValueError`` for an activation it does not evaluate or a p it is not built for, and
    ``streamed_kernel.KernelUnavailable`` when this CPU does not run AVX-512 or the library can
    be neither loaded nor built.
    """

    def __init__(self, activation: str, p: int, *, train_output: bool, leak: float = 0.0) -> None:
        if activation not in ACTIVATION_CODES:
            raise ValueError(
                f"the family kernel evaluates {', '.join(ACTIVATION_CODES)}, not {activation!r}"
            )
        if not 1 <= p <= STREAMED_MAX_P:
            raise ValueError(f"the family kernel is built for 1 <= p <= {STREAMED_MAX_P}, got {p}")
        self.activation = activation
        self.code = ACTIVATION_CODES[activation]
        self.leak = leak if activation == "leaky_relu" else 0.0
        self.p = p
        self.train_output = train_output
        self._op = streamed_kernel.load_op(ISA, "family")
        self._scratch: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}

    def __call__(
        self, Wt: torch.Tensor, a: torch.Tensor, Xt: torch.Tensor, y: torch.Tensor, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        p, m = Wt.shape
        n = Xt.shape[0]
        if p != self.p or Xt.shape != (n, p) or y.shape != (n,) or a.shape != (m,):
            raise ValueError(
                f"shapes do not match (p = {self.p}): Wt {tuple(Wt.shape)}, a {tuple(a.shape)}, "
                f"Xt {tuple(Xt.shape)}, y {tuple(y.shape)}"
            )
        if (n, m) not in self._scratch:  # buffers the kernel overwrites, made once per shape
            d_cells, s_cells = buffer_doubles(self.activation, n, m, self.train_output)
            self._scratch[(n, m)] = (
                torch.empty(n, dtype=torch.float64),
                torch.empty(n, 8, dtype=torch.float64),
                torch.empty(d_cells, dtype=torch.float64),
                torch.empty(s_cells, dtype=torch.float64),
            )
        G = torch.empty_like(Wt)
        Ga = torch.empty(m if self.train_output else 0, dtype=torch.float64)
        loss = torch.empty((), dtype=torch.float64)
        self._op(
            self.code, self.train_output, Wt, Xt, y, a, self.leak, scale, m**-0.5, G, Ga, loss,
            *self._scratch[(n, m)],
        )  # fmt: skip
        return G.mT, Ga if self.train_output else None, loss
