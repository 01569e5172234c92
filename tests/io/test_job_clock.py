"""The job clock: a process's start time and lap-by-lap parts."""

from __future__ import annotations

import json
import time

import psutil
import pytest

from minnorm.io.job_clock import SUMMARY_PREFIX, JobClock, process_start_epoch


def test_process_start_matches_psutil() -> None:
    # /proc/self/stat in clock ticks against psutil's own reading of the process's start.
    assert process_start_epoch() == pytest.approx(psutil.Process().create_time(), abs=0.05)


def test_laps_add_up_to_the_time_since_the_start() -> None:
    start = time.time() - 2.0  # a process that started two seconds ago
    clock = JobClock(start_epoch=start)
    first = clock.lap("imports")
    assert first == pytest.approx(2.0, abs=0.05)
    time.sleep(0.05)
    clock.lap("work")
    clock.lap("work")
    assert clock.parts["work"] >= 0.05
    assert sum(clock.parts.values()) == pytest.approx(clock.elapsed(), abs=0.01)
    clock.move(0.02, "work", "update")
    assert clock.parts["update"] == pytest.approx(0.02)
    assert sum(clock.parts.values()) == pytest.approx(clock.elapsed(), abs=0.01)
    line = clock.summary()
    assert line.startswith(SUMMARY_PREFIX)
    record = json.loads(line[len(SUMMARY_PREFIX) :])
    assert record["start"] == pytest.approx(start, abs=1e-3)
    assert record["end"] - record["start"] == pytest.approx(sum(record["parts"].values()), abs=1e-3)
