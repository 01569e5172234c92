"""Tests of minnorm.training.progress: terminal lines with run i/N, post-compilation rate and
ETAs."""

from __future__ import annotations

import io

import pytest

from helpers.training import run_config
from minnorm.data.datasets import make_dataset
from minnorm.data.settings import DataSettings
from minnorm.data.target_file import build_target_dataset
from minnorm.training.progress import JobProgress, format_duration
from minnorm.training.train import train_run


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 185, 7620, float("nan"))] == [
        "0s",
        "42s",
        "3m05s",
        "2h07m",
        "?",
    ]


def test_rate_excludes_the_first_chunk_and_etas_cover_run_and_job():
    clock, out = FakeClock(), io.StringIO()
    progress = JobProgress(3, interval_s=10.0, stream=out, clock=clock)
    progress.start_run("exp m100 s0", 1000, 0)
    clock.now = 30.0  # the first chunk (start-up and torch.compile) takes 30 s for 10 steps
    progress.chunk_done(10)
    assert (
        out.getvalue()
        == "[exp m100 s0] run 1/3  step 10/1000  ? steps/s (compiling)  ETA run ?, job ?\n"
    )
    clock.now = (
        35.0  # then 100 steps/s: 500 steps in 5 s, no line yet (interval 10 s since the last)
    )
    progress.chunk_done(510)
    assert out.getvalue().count("\n") == 1
    clock.now = 40.0
    progress.chunk_done(1000)  # 990 steps after the first chunk, in 10 s: 99 steps/s
    line = out.getvalue().splitlines()[-1]
    # run: no step left; job: two more runs of 1000 steps at 99 steps/s.
    assert line == "[exp m100 s0] run 1/3  step 1000/1000  99 steps/s  ETA run 0s, job 20s"
    progress.end_run(1000)
    assert (
        out.getvalue().splitlines()[-1]
        == "[exp m100 s0] run 1/3  step 1000/1000  99 steps/s  done; ETA job 20s"
    )
    progress.skip_run()  # run 2 was reused
    progress.start_run("exp m100 s2", 1000, 400)  # run 3 resumes at step 400
    clock.now = 51.0
    progress.chunk_done(500)  # the new run's own first chunk: rate kept from the last run
    assert (
        out.getvalue().splitlines()[-1]
        == "[exp m100 s2] run 3/3  step 500/1000  99 steps/s  ETA run 5s, job 5s"
    )
    assert progress.runs_done == 2


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_train_run_reports_progress(interval):
    data_cfg = DataSettings("sphere_quadratic", n_train=8, n_test=4, seed=0, dim=3)
    data = make_dataset(data_cfg, label_noise=0.0, seed=0)
    cfg = run_config(data_cfg, width=16, lr=0.1, steps=30, every=10, log_points=0)
    target = build_target_dataset(data, width=16, seed=0, bias=True, kappa=1.0)
    out = io.StringIO()
    progress = JobProgress(2, interval_s=interval, stream=out)
    train_run(data, target, cfg, progress=progress)
    lines = out.getvalue().splitlines()
    # Chunks end at steps 10, 20, 30: a line after each with interval 0, else only the final one.
    assert len(lines) == (4 if interval == 0 else 1)
    assert lines[-1].startswith("[unit m16 s0] run 1/2  step 30/30  ")
    assert "steps/s  done; ETA job" in lines[-1]
    assert progress.runs_done == 1
