"""Lightning pieces of a training run: the GD system, the full-batch data module and a quiet
Trainer."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.environments import LightningEnvironment

from minnorm.core.family_network import TwoLayerNet
from minnorm.core.model import TwoLayerReLU, augment_inputs, network_outputs
from minnorm.io.job_clock import CLOCK
from minnorm.training.gd_step import GradientStep, loss_value, select_step

# Lightning reports accelerator availability through this logger at INFO level on every fit.
_LIGHTNING_INFO_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "pytorch_lightning.accelerators.cuda",
)
# Warnings Lightning emits when a run is pinned to the CPU on a machine that has a GPU/TPU: the
# choice is the config's (training.accelerator), so they carry no information for us.
_UNUSED_ACCELERATOR_WARNINGS = (r"GPU available but not used", r"TPU available but not used")
# Every fit probes for SLURM and warns if `srun` is installed but not used; our runs are single
# processes on one device whether or not a cluster launched them.
_SRUN_WARNING = r"The `srun` command is available on your system but is not used"
# pytorch_lightning 2.6 builds torch's `LeafSpec`, which torch 2.13 deprecates (FutureWarning), on
# every fit; nothing in our code can avoid it.
_LIGHTNING_LEAFSPEC_WARNING = r"`isinstance\(treespec, LeafSpec\)` is deprecated"

# Parts of the job clock (minnorm.io.job_clock): Lightning's own work (the Trainer, its loop and
# hooks), the GD steps (the step's calls), the optimizer's update W <- W - lr * grad, and the
# per-chunk divergence checks.
LIGHTNING_PART = "Lightning (Trainer, loop, hooks)"
STEP_PART = "GD steps (the step's calls)"
UPDATE_PART = "GD update (W -= lr * grad)"
CHECK_PART = "divergence checks"


class FullBatchData(pl.LightningDataModule):
    """Serves the whole training set as one batch, once per chunk of GD steps.

    X: (n, d) raw inputs and y: (n,) labels, or (S, n) for a batch of S runs (one row of labels
    each), already in the training dtype. They are moved to the Trainer's device once in
    ``setup``, so Lightning's per-batch transfer is a no-op.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, num_chunks: int) -> None:
        super().__init__()
        if X.ndim != 2 or y.ndim not in (1, 2) or y.shape[-1] != X.shape[0]:
            raise ValueError(
                f"need X (n, d) and y (n,) or (S, n), got {tuple(X.shape)} and {tuple(y.shape)}"
            )
        self.X, self.y, self.num_chunks = X, y, int(num_chunks)

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else self.X.device
        self.X, self.y = self.X.to(device), self.y.to(device)

    def train_dataloader(self) -> _RepeatedBatch:
        # Lightning accepts any iterable: no DataLoader means no collation, no worker processes
        # (and no warning about them), and no copies of the batch.
        return _RepeatedBatch((self.X, self.y), self.num_chunks)


class _RepeatedBatch:
    """The same batch ``length`` times (not a list: Lightning reads a list as several loaders)."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter([self.batch] * self.length)


class GDSystem(pl.LightningModule):
    """Full-batch gradient descent on a ``TwoLayerReLU`` (the papers' network) or a
    ``TwoLayerNet`` (any activation; with the output layer trained, GD steps W and a together)
    with manual optimisation.

    The model is one network (W: (m, p)) or a batch of S networks of one width on the same data
    (W: (S, m, p), a seed batch): the runs of a batch share every step's call but no number, so
    each follows exactly the iterates it would follow alone.

    Batch k of the data module runs the GD steps from ``boundaries[k]`` to ``boundaries[k + 1]``
    inside one ``training_step``, so Lightning's per-batch overhead is paid once per chunk while
    the iterates stay exactly those of a plain loop ``W <- W - lr * dL/dW``. The loss (training
    dtype) of every iterate and the weights at the end of every chunk are checked, run by run; a
    loss that is non-finite or above ``loss_limit`` (a number, or one per run of a batch), or
    non-finite weights, mark that run diverged, located to the exact step by replaying the chunk
    (``diverged_steps[s]``: the first step k whose W_k or loss(W_k) is bad). The other runs of a
    batch go on; training stops when every run has diverged. A chunk can end at a good W_k whose
    loss is found bad only by the next chunk, so a diverged step may equal a completed boundary;
    whatever was recorded at or after it must be discarded by the caller.
    """

    def __init__(
        self,
        model: TwoLayerReLU | TwoLayerNet,
        *,
        lr: float,
        loss: str,
        step_impl: str,
        boundaries: Sequence[int],
        loss_limit: float | Sequence[float] = math.inf,
    ) -> None:
        super().__init__()
        if len(boundaries) < 1 or any(
            b >= c for b, c in zip(boundaries, boundaries[1:], strict=False)
        ):
            raise ValueError(f"boundaries must be strictly increasing, got {list(boundaries)}")
        self.automatic_optimization = False
        self.model = model
        self.lr, self.loss, self.step_impl = float(lr), loss, step_impl
        self.batched = model.W.ndim == 3
        runs = model.W.shape[0] if self.batched else 1
        limits = (
            [float(loss_limit)] * runs
            if isinstance(loss_limit, (int, float))
            else [float(v) for v in loss_limit]
        )
        if len(limits) != runs:
            raise ValueError(f"loss_limit has {len(limits)} values for {runs} runs")
        # Capped at the dtype's largest finite value so that `loss <= limit` also rejects inf
        # (and NaN, which compares False): one comparison per step tests both.
        top = float(torch.finfo(model.W.dtype).max)
        self.loss_limit = torch.tensor(
            [min(v, top) for v in limits], dtype=model.W.dtype, device=model.W.device
        ).reshape(model.W.shape[:-2])
        self.boundaries = [int(b) for b in boundaries]
        self.step = self.boundaries[0]  # the step whose weights model.W holds
        self.diverged_steps: list[int | None] = [None] * runs
        # Per run, why it diverged: an index of run_plan.DIVERGENCE_REASONS (0: it did not).
        self.diverged_reasons: list[int] = [0] * runs
        self._gradient: GradientStep | None = None

    @property
    def diverged_step(self) -> int | None:
        """The first bad step of a single run (None: it did not diverge); batches:
        ``diverged_steps``."""
        if self.batched:
            raise AttributeError(
                "a batch of runs has one diverged step per run: use diverged_steps"
            )
        return self.diverged_steps[0]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self._trained(), lr=self.lr, momentum=0.0, weight_decay=0.0)

    def _trained(self) -> list[torch.Tensor]:
        """The trained parameters: W, and a when the output layer is trained."""
        if isinstance(self.model, TwoLayerNet):
            return list(self.model.trained())
        return [self.model.W]

    def _update(self, optimizer: torch.optim.Optimizer) -> None:
        """One GD update of the trained parameters from their ``.grad``: on the CPU the very
        operation ``torch.optim.SGD.step`` applies without momentum or weight decay (``p.add_(grad,
        alpha=-lr)``, bit for bit), without its per-call bookkeeping (tens of microseconds per
        step: ~7 % of a ss_fig1 job's steps, BENCHMARKS.md); elsewhere the optimizer's step."""
        if self.model.W.device.type != "cpu":
            optimizer.step()
            return
        with torch.no_grad():
            for param in self._trained():
                if param.grad is not None:
                    param.add_(param.grad, alpha=-self.lr)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        CLOCK.lap(LIGHTNING_PART)
        if all(step is not None for step in self.diverged_steps):
            return None
        X, y = batch
        if self._gradient is None:  # the step's implementation, chosen once (gd_step.select_step)
            self._gradient = select_step(self.step_impl, self.model, X, y, self.loss)
            self._gradient.lay_out(self.model.W)  # setup: W in the layout the step reads
            CLOCK.lap("loading the step")
        optimizer = self.optimizers(use_pl_optimizer=False)
        assert isinstance(optimizer, torch.optim.Optimizer)  # configure_optimizers returns one
        start, stop = self.boundaries[batch_idx], self.boundaries[batch_idx + 1]
        W = self.model.W
        W_start = W.detach().clone()
        a_start = self.model.a.detach().clone() if self.trains_output else None
        # The loss at W_stop is checked by the next chunk's first step; only the last chunk
        # needs an extra forward pass for it.
        last = batch_idx + 2 == len(self.boundaries)
        good = self._run(optimizer, stop - start)
        if last:
            good = good & self._good_at(X, y)
        flags = self._flags(good)
        new = [s for s in self._active() if not flags[s]]
        CLOCK.lap(CHECK_PART)
        if not new:
            self.step = stop
            return None
        # Rare path: replay the chunk one step at a time to find each new bad run's first bad
        # iterate; the other runs recompute the same iterates (their numbers do not mix).
        with torch.no_grad():
            W.copy_(W_start)
            if a_start is not None:
                self.model.a.copy_(a_start)
        for s in new:
            self.diverged_steps[s] = (
                stop  # unless an earlier iterate is bad: then W_stop or its loss is
            )
        for step in range(start, stop):
            grad, loss = self._step(W)
            step_good = self._flags(self._good(loss, W))
            for s in new:
                if self.diverged_steps[s] == stop and not step_good[s]:
                    self.diverged_steps[s] = step
                    self.diverged_reasons[s] = self._reasons(loss, W)[s]
            W.grad = grad
            self._update(optimizer)
        at_stop = [s for s in new if self.diverged_steps[s] == stop]
        if at_stop:  # W now holds W_stop again: say what was bad about it
            with torch.no_grad():
                f = network_outputs(W, augment_inputs(X, self.model.bias), self.model.a)
                reasons = self._reasons(loss_value(f, y, self.loss), W)
            for s in at_stop:
                self.diverged_reasons[s] = reasons[s]
        if self._active():
            self.step = stop
        else:  # every run diverged: W holds no good iterate any more
            self.trainer.should_stop = True
        return None

    @property
    def trains_output(self) -> bool:
        """Whether GD trains the output weights a too (``model.a`` is then a parameter)."""
        return isinstance(self.model, TwoLayerNet) and self.model.train_output

    def _active(self) -> list[int]:
        """Indices of the runs that have not diverged."""
        return [s for s, step in enumerate(self.diverged_steps) if step is None]

    def _good(self, loss: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """Per run (0-d or (S,)): the loss is within ``loss_limit`` (not inf or NaN: NaN compares
        False) and the weights are finite."""
        good = (loss <= self.loss_limit) & torch.isfinite(W).flatten(-2).all(-1)
        if self.trains_output:
            good = good & torch.isfinite(self.model.a).all(-1)
        return good

    def _reasons(self, loss: torch.Tensor, W: torch.Tensor) -> list[int]:
        """Per run, the index in run_plan.DIVERGENCE_REASONS of what is wrong at (loss, W):
        non-finite weights first, then a non-finite loss, else a loss above ``loss_limit`` (0 if
        neither)."""
        weights_bad = ~torch.isfinite(W).flatten(-2).all(-1)
        loss_bad = ~torch.isfinite(loss)
        above = ~(loss <= self.loss_limit)
        reason = torch.where(
            weights_bad,
            1,
            torch.where(loss_bad, 2, torch.where(above, 3, 0)),
        )
        return [int(r) for r in reason.reshape(-1).tolist()]

    @staticmethod
    def _flags(per_run: torch.Tensor) -> list[bool]:
        """A per-run flag tensor (0-d or (S,)) as one Python bool per run (one device sync)."""
        return per_run.reshape(-1).tolist()

    @property
    def _step(self) -> GradientStep:
        """The step's implementation (chosen by the first ``training_step``)."""
        if self._gradient is None:
            raise RuntimeError("no GD step before the first training_step")
        return self._gradient

    @property
    def step_path(self) -> str:
        """The name of the implementation that computed the GD steps (``GradientStep.name``, e.g.
        "cpp-avx512", "compiled-streamed", "eager"), "none" before the first step."""
        return "none" if self._gradient is None else self._gradient.name

    def step_description(self) -> str:
        """How the GD steps were computed, for the run log, e.g. "fused (cpp-avx512)"."""
        path = self.step_path
        return self.step_impl if path == self.step_impl else f"{self.step_impl} ({path})"

    def _run(self, optimizer: torch.optim.Optimizer, num_steps: int) -> torch.Tensor:
        """Take ``num_steps`` GD steps; returns, per run (0-d for one run, (S,) for a batch), False
        if the loss at any of their start points is non-finite or above ``loss_limit``, or the
        final weights are non-finite (``_good``). The losses stay on the device until the chunk
        ends: no sync per step."""
        W = self.model.W
        losses = []
        clock = time.perf_counter
        update = 0.0
        CLOCK.lap(CHECK_PART)  # the chunk's set-up (W at its start kept for a replay)
        for _ in range(num_steps):
            W.grad, loss = self._step(W)
            losses.append(loss)
            before = clock()
            self._update(optimizer)
            update += clock() - before
        CLOCK.lap(STEP_PART)
        CLOCK.move(update, STEP_PART, UPDATE_PART)
        # One reduction per chunk; amax propagates NaN.
        return self._good(torch.stack(losses).amax(0), W)

    def _good_at(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per run, whether the loss (training dtype) at the current weights is finite and within
        the limit."""
        with torch.no_grad():
            if isinstance(self.model, TwoLayerNet):
                f = self.model(X)
            else:
                f = network_outputs(self.model.W, augment_inputs(X, self.model.bias), self.model.a)
            return loss_value(f, y, self.loss) <= self.loss_limit


def make_trainer(accelerator: str, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """A one-device Trainer for one pass over the chunks, without loggers, checkpoints or bars."""
    with quiet_lightning():
        return pl.Trainer(
            accelerator=accelerator,
            devices=1,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=list(callbacks),
            # One process on one device: an explicit environment stops Lightning from probing
            # for SLURM (and warning that `srun` is installed but unused) inside cluster jobs.
            plugins=[LightningEnvironment()],
        )


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's accelerator banner and its 'available but not used' warnings only."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_INFO_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            for message in (*_UNUSED_ACCELERATOR_WARNINGS, _SRUN_WARNING):
                warnings.filterwarnings("ignore", message=message)
            warnings.filterwarnings(
                "ignore", message=_LIGHTNING_LEAFSPEC_WARNING, category=FutureWarning
            )
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)
