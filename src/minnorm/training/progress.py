"""A compact progress line on the terminal for a job that trains several runs one after another.

Snakemake sends a job's stderr (and our log) to the job log, while its stdout reaches the
terminal, so these lines go to stdout: run i/N, step/total, steps/s measured after compilation
(the first chunk of every run includes Lightning's start and ``torch.compile``, so the rate is
taken from the end of that chunk) and an ETA for the run and for the job. One line every
``interval_s`` seconds of wall time and one when a run ends.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

# Often enough to show that a long job is alive, rarely enough to keep the terminal readable.
DEFAULT_INTERVAL_S = 10.0


def format_duration(seconds: float) -> str:
    """Compact h/m/s: 42s, 3m05s, 2h07m; "?" when unknown (NaN or infinite)."""
    if not math.isfinite(seconds):
        return "?"
    total = max(int(round(seconds)), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class JobProgress:
    """Progress of one job's runs: call ``start_run``, then ``chunk_done`` after every chunk of GD
    steps, then ``end_run``; ``skip_run`` for a run that needed no training (reused).

    ETA of the job: the steps left in this run plus ``total_steps`` for each run not started yet
    (runs of one job share their step count; runs trained side by side as a batch count as one
    run of the batch's size), at the latest measured rate, so reused runs still to come make it
    an upper bound.
    """

    def __init__(
        self,
        total_runs: int,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total_runs = int(total_runs)
        self.interval_s = float(interval_s)
        self.stream = stream
        self.clock = clock
        self.runs_done = 0
        self.rate = math.nan  # steps/s after compilation, of the current or last run
        self._name = ""
        self._total_steps = 0
        self._runs = 1  # runs trained side by side in the current batch
        self._measured_from: tuple[float, int] | None = (
            None  # (time, step) at the first chunk's end
        )
        self._last_print = 0.0

    def start_run(self, name: str, total_steps: int, start_step: int, runs: int = 1) -> None:
        """A run named ``name`` (e.g. "exp m1000 s0") begins training at ``start_step`` of
        ``total_steps``; ``runs`` > 1: that many runs trained side by side, counted as one until
        they end."""
        self._name, self._total_steps, self._runs = name, int(total_steps), max(int(runs), 1)
        self._measured_from = None
        self._last_print = self.clock()

    def chunk_done(self, step: int) -> None:
        """The weights of ``step`` are computed; prints a line if ``interval_s`` has passed."""
        now = self._measure(step)
        if now - self._last_print >= self.interval_s:
            self._print(self.line(step))

    def end_run(self, step: int, note: str = "done") -> None:
        """The run stopped at ``step`` (its last step, or where it diverged); prints its final
        line."""
        self._measure(step)
        self.runs_done += self._runs
        self._print(self.line(step, note))

    def skip_run(self) -> None:
        """A run of this job needed no training (reused); it counts as done."""
        self.runs_done += 1

    def line(self, step: int, note: str = "") -> str:
        """The line for the current run at ``step``; ``note`` (e.g. "done") marks an ended run."""
        running = not note
        run_left = (self._total_steps - step) / self.rate if running else 0.0
        runs_not_started = self.total_runs - self.runs_done - (self._runs if running else 0)
        job_left = run_left + max(runs_not_started, 0) / self._runs * self._total_steps / self.rate
        rate = (
            f"{self.rate:.0f} steps/s"
            if math.isfinite(self.rate)
            else "? steps/s (compiling)"
            if running
            else "? steps/s"
        )
        eta = (
            f"ETA run {format_duration(run_left)}, job {format_duration(job_left)}"
            if running
            else f"{note}; ETA job {format_duration(job_left)}"
        )
        first, last = self.runs_done + 1, self.runs_done + self._runs
        if not running:
            first, last = first - self._runs, last - self._runs
        index = str(last) if first == last else f"{first}-{last}"
        where = f"run {index}/{self.total_runs}  step {step}/{self._total_steps}"
        return f"[{self._name}] {where}  {rate}  {eta}"

    def _measure(self, step: int) -> float:
        """Update the post-compilation rate with the weights of ``step`` done now; returns now."""
        now = self.clock()
        if self._measured_from is None:
            self._measured_from = (now, step)  # end of the chunk that included compilation
        elif now > self._measured_from[0] and step > self._measured_from[1]:
            self.rate = (step - self._measured_from[1]) / (now - self._measured_from[0])
        return now

    def _print(self, text: str) -> None:
        self._last_print = self.clock()
        print(text, file=self.stream if self.stream is not None else sys.stdout, flush=True)
