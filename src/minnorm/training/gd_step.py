"""How a GD step's gradient is computed: one small strategy class per implementation, each with a
``name``, and the one function that chooses among them (``select_step``)."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Protocol

import torch

from minnorm.core.family_network import TwoLayerNet
from minnorm.core.model import TwoLayerReLU, augment_inputs
from minnorm.training import streamed_kernel
from minnorm.training.family_step import FamilyStep
from minnorm.training.gradient_formulas import (
    LOSSES,
    STREAMED_BLOCK,
    STREAMED_BLOCK_ABOVE_M,
    STREAMED_INDUCTOR_OPTIONS,
    STREAMED_MAX_P,
    analytic_gradient,
    loss_value,
    residual_scale,
    streamed_gradient,
)

__all__ = [
    "FORMULAS",
    "LOSSES",
    "STEP_IMPLS",
    "STREAMED_BLOCK",
    "STREAMED_BLOCK_ABOVE_M",
    "STREAMED_INDUCTOR_OPTIONS",
    "STREAMED_MAX_P",
    "DEFAULT_KERNEL_ISAS",
    "CompiledStep",
    "EagerStep",
    "FusedGradient",
    "GradientStep",
    "KernelStep",
    "UncompiledStep",
    "analytic_gradient",
    "eager_gradient_fn",
    "loss_value",
    "residual_scale",
    "select_step",
    "streamed_gradient",
]

STEP_IMPLS: tuple[str, ...] = ("eager", "fused")  # the values of training.step_impl
FORMULAS: tuple[str, ...] = ("streamed", "matmul")  # what CompiledStep compiles

_log = logging.getLogger(__name__)


class GradientStep(Protocol):
    """A GD step's gradient for the fixed full batch it was built for: W: (..., m, p) ->
    (dL/dW: (..., m, p), L: (...)); W: (m, p) for one run (L 0-d), (S, m, p) for S runs on the
    same data (L: (S,), each run's own loss). ``name`` says which implementation computes it (the
    run file's ``gd_step`` attribute); ``lay_out(model.W)`` once before the first step re-lays W
    out in memory as the step reads it (same values)."""

    @property
    def name(self) -> str: ...

    def lay_out(self, W: torch.nn.Parameter) -> None: ...

    def __call__(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def _lay_out_transposed(W: torch.nn.Parameter) -> None:
    """W: (..., m, p) stored as the transpose of a contiguous (..., p, m) tensor: the streamed
    step reads and returns that layout, so no step copies W and SGD's update runs over matching
    contiguous memory."""
    with torch.no_grad():
        W.data = W.data.mT.contiguous().mT


class EagerStep:
    """``eager``: the gradient by autograd through the plain model; X: (n, d) raw inputs, y: (n,)
    or (S, n). It is taken at the model's own parameter W (each run of a batch gets the gradient
    of its own loss: the runs share no parameter)."""

    name = "eager"

    def __init__(self, model: TwoLayerReLU, X: torch.Tensor, y: torch.Tensor, loss: str) -> None:
        residual_scale(loss, 1)  # validates the loss name
        self.model, self.X, self.y, self.loss = model, X, y, loss

    def lay_out(self, W: torch.nn.Parameter) -> None:
        """Nothing to do: autograd reads W as it is."""

    def __call__(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if W is not self.model.W:
            raise ValueError("the eager gradient is taken at the model's own parameter W")
        with torch.enable_grad():
            value = loss_value(self.model(self.X), self.y, self.loss)
            (grad,) = torch.autograd.grad(value.sum(), W)
        return grad, value.detach()


class KernelStep:
    """``cpp-<isa>``: the C++ streamed kernel (``streamed_kernel.StreamedKernel``) of one build,
    ``isa`` one of ``streamed_kernel.ISAS`` (default: this CPU's widest). float64 on the CPU with
    p <= ``STREAMED_MAX_P``. Every build gives the numbers of the compiled unblocked streamed
    formula on an AVX-512 CPU, bit for bit, at every width, about twice as fast as it (it keeps
    the activation pattern as bits). Raises ``streamed_kernel.KernelUnavailable`` if the build
    can be neither loaded nor made."""

    def __init__(
        self,
        model: TwoLayerReLU,
        X: torch.Tensor,
        y: torch.Tensor,
        loss: str,
        isa: str | None = None,
    ) -> None:
        self.Xt = augment_inputs(X, model.bias).contiguous()
        self.y, self.a = y.contiguous(), model.a.contiguous()
        self.scale = residual_scale(loss, X.shape[0])
        self.kernel = streamed_kernel.StreamedKernel(self.Xt.shape[1], isa)
        self.name = f"cpp-{self.kernel.isa}"

    def lay_out(self, W: torch.nn.Parameter) -> None:
        _lay_out_transposed(W)

    def __call__(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.kernel(W.detach().mT.contiguous(), self.Xt, self.y, self.a, self.scale)


class UncompiledStep:
    """``uncompiled-matmul``: ``analytic_gradient`` as plain torch calls, where nothing can be
    compiled (no C++ compiler)."""

    name = "uncompiled-matmul"

    def __init__(self, model: TwoLayerReLU, X: torch.Tensor, y: torch.Tensor, loss: str) -> None:
        self.Xt = augment_inputs(X, model.bias).contiguous()
        self.y, self.a = y, model.a
        self.scale = torch.tensor(residual_scale(loss, X.shape[0]), dtype=X.dtype, device=X.device)

    def lay_out(self, W: torch.nn.Parameter) -> None:
        """Nothing to do: the matrix products read W as it is."""

    def __call__(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return analytic_gradient(W.detach(), self.Xt, self.y, self.a, self.scale)


# Graphs dynamo may keep for the compiled step in one process (see CompiledStep).
RECOMPILE_LIMIT = 64
# Inductor's first compilation in a process imports modules that use torch.jit.script_method,
# deprecated in torch 2.13; under warnings-as-errors that would abort the compile.
INDUCTOR_IMPORT_WARNING = r"`torch\.jit\.script_method` is deprecated"


class CompiledStep:
    """``compiled-streamed`` (``-blocked``) or ``compiled-matmul``: the analytic gradient compiled
    with torch.compile (inductor), for one fixed full batch.

    X: (n, d) raw inputs, y: (n,) or (S, n). On CPU with p <= ``STREAMED_MAX_P`` the compiled
    formula is ``streamed_gradient`` (two passes over n x m values held only in registers), which
    wants W laid out as a transposed (p, m) tensor (``lay_out``); otherwise, and on GPUs, it is
    ``analytic_gradient`` (matrix products by the BLAS). ``formula`` names the one in use; pass
    ``formula`` to force one. ``block`` is the streamed formula's block size over m (None:
    unblocked), by default ``STREAMED_BLOCK`` for m > ``STREAMED_BLOCK_ABOVE_M``; pass it to force
    one (0 means None). Compilation happens on the first call; if it fails (e.g. a GPU without a
    working Triton), a log warning says so and the step becomes ``uncompiled-matmul`` (the
    uncompiled ``analytic_gradient``; ``compiled`` is then False).
    """

    def __init__(
        self,
        model: TwoLayerReLU,
        X: torch.Tensor,
        y: torch.Tensor,
        loss: str,
        formula: str | None = None,
        block: int | None = None,
    ) -> None:
        self.Xt = augment_inputs(X, model.bias).contiguous()
        self.y, self.a = y, model.a
        self.scale = torch.tensor(residual_scale(loss, X.shape[0]), dtype=X.dtype, device=X.device)
        if formula is None:
            streamed = X.device.type == "cpu" and self.Xt.shape[1] <= STREAMED_MAX_P
            formula = "streamed" if streamed else "matmul"
        if formula not in FORMULAS:
            raise ValueError(f"formula must be one of {FORMULAS}, got {formula!r}")
        self.formula = formula
        self.compiled, self._first_call = True, True
        m = model.W.shape[-2]
        if block is None:
            block = STREAMED_BLOCK if m > STREAMED_BLOCK_ABOVE_M else 0
        self.block = block if self.streamed and 0 < block < m else None
        # dynamic=None: one static graph per process in production (one shape); a process that
        # sees several shapes (tests) gets one dynamic-shape graph instead of recompiling per
        # shape into dynamo's recompile limit (the streamed formula still specialises on p).
        # fullgraph: fail loudly rather than split. Dynamo keeps at most `recompile_limit` (8 by
        # default) graphs per function and, with fullgraph, fails beyond it; one process may need
        # more (a job's batches of several sizes, with and without a bias; the test suite), each
        # graph still compiled once.
        torch._dynamo.config.recompile_limit = max(
            torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
        )
        self._fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]
        if self.streamed:
            self._fn = torch.compile(
                functools.partial(streamed_gradient, block=self.block),
                fullgraph=True,
                options=STREAMED_INDUCTOR_OPTIONS,
            )
        else:
            self._fn = torch.compile(analytic_gradient, fullgraph=True)

    @property
    def streamed(self) -> bool:
        """Whether the step takes W transposed (the streamed formula)."""
        return self.formula == "streamed"

    @property
    def name(self) -> str:
        if not self.compiled:
            return UncompiledStep.name
        if not self.streamed:
            return "compiled-matmul"
        return "compiled-streamed-blocked" if self.block else "compiled-streamed"

    def lay_out(self, W: torch.nn.Parameter) -> None:
        """The streamed formula's layout (W transposed); without it the steps are the same
        numbers, but each copies W. No-op for the matmul formula."""
        if self.streamed:
            _lay_out_transposed(W)

    def __call__(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        W = W.detach()
        args = (W.mT.contiguous() if self.streamed else W, self.Xt, self.y, self.a, self.scale)
        if not self._first_call:
            with torch.no_grad():
                return self._fn(*args)
        self._first_call = False
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=INDUCTOR_IMPORT_WARNING, category=DeprecationWarning
                )
                return self._fn(*args)
        except Exception as exc:  # inductor raises many types; all mean "cannot compile here"
            _log.warning("torch.compile of the GD step failed (%s); using the eager formula", exc)
            self._fn, self.compiled, self.formula = analytic_gradient, False, "matmul"
            with torch.no_grad():
                return analytic_gradient(W, self.Xt, self.y, self.a, self.scale)


# Names of the compiled and eager steps before the strategies (callers still use them).
FusedGradient = CompiledStep
eager_gradient_fn = EagerStep

# The builds of the C++ kernel a training step uses by default: those whose lanes are vector
# registers. The portable build (plain C++, 2 lanes at a time) repeats the same numbers but is not
# vectorised for any CPU, where inductor vectorises the compiled formula for the CPU's own vector
# unit (NEON, VSX, ...); it runs only when asked for (``KernelStep(..., isa="portable")``).
# `benchmarks/bench_fused.py --paths` times every path.
DEFAULT_KERNEL_ISAS: tuple[str, ...] = ("avx512", "avx2")

# Reasons already warned about in this process: one warning each, however many steps are built.
_warned: set[str] = set()


def select_step(
    step_impl: str,
    model: TwoLayerReLU | TwoLayerNet,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    *,
    threads: int | None = None,
    isa: str | None = None,
) -> GradientStep:
    """The one place that decides how GD steps are computed, for the model and its full batch
    X: (n, d), y: (n,) or (S, n), from ``training.step_impl``, X's dtype and device, p, torch's
    thread count and the CPU's instruction set:

    - ``eager``: ``EagerStep``;
    - ``fused``, float64 on the CPU, p <= ``STREAMED_MAX_P``, one thread (a training job), on a
      CPU whose ``streamed_kernel.cpu_isa()`` is in ``DEFAULT_KERNEL_ISAS``: ``KernelStep`` of
      that build. If it can be neither loaded nor built, one log warning says why and the step
      is ``CompiledStep`` (the streamed formula), or ``UncompiledStep`` when there is no C++
      compiler (inductor would need one too);
    - ``fused`` otherwise: ``CompiledStep`` (float32; several threads, between which inductor
      splits the sums over m; p > ``STREAMED_MAX_P``; GPUs; CPUs with neither AVX-512 nor AVX2).

    Every other network (a ``TwoLayerNet``: another activation, or the output layer trained) gets
    ``family_step.FamilyStep``: for ``fused`` its C++ kernel (softplus, tanh, erf; float64, one
    thread, AVX-512) or its compiled formula, the plain formula for ``eager``.

    ``threads`` and ``isa`` stand in for ``torch.get_num_threads()`` and ``cpu_isa()`` (tests,
    benchmarks).
    """
    residual_scale(loss, 1)  # validates the loss name up front
    if isinstance(model, TwoLayerNet):
        if step_impl not in STEP_IMPLS:
            raise ValueError(f"training.step_impl must be one of {STEP_IMPLS}, got {step_impl!r}")
        return FamilyStep(
            model, X, y, loss, compiled=step_impl == "fused", threads=threads, isa=isa
        )
    if step_impl == "eager":
        return EagerStep(model, X, y, loss)
    if step_impl != "fused":
        raise ValueError(f"training.step_impl must be one of {STEP_IMPLS}, got {step_impl!r}")
    threads = torch.get_num_threads() if threads is None else threads
    isa = streamed_kernel.cpu_isa() if isa is None else isa
    p = model.W.shape[-1]
    cpu_float64 = X.device.type == "cpu" and X.dtype == torch.float64
    if cpu_float64 and p <= STREAMED_MAX_P and threads == 1 and isa in DEFAULT_KERNEL_ISAS:
        try:
            return KernelStep(model, X, y, loss, isa)
        except streamed_kernel.KernelUnavailable as exc:
            without = UncompiledStep if exc.no_compiler else CompiledStep
            fallback: GradientStep = without(model, X, y, loss)
            if str(exc) not in _warned:
                _warned.add(str(exc))
                _log.warning(
                    "the C++ streamed kernel cannot be used (%s); the GD steps are %s instead",
                    exc,
                    fallback.name,
                )
            return fallback
    return CompiledStep(model, X, y, loss)
