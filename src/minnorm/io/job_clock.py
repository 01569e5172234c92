"""Where a job process's wall time goes: a lap clock started at the process's own start.

Every workflow job is a fresh interpreter. ``CLOCK.lap(part)`` charges the time since the previous
lap (the first: since the process started, read from /proc) to ``part``; laps never overlap, so
the parts add up to the time from the process's start to the last lap. ``CLOCK.move`` re-labels
seconds measured inside a lap (e.g. the optimizer's update inside the GD steps). The job's script
logs the parts as one JSON line at exit (``CLOCK.summary``), which ``benchmarks/bench_fig1.py``
reads: measured timers, not differences.
"""

from __future__ import annotations

import json
import os
import time

# The log line's prefix (benchmarks/bench_fig1.py looks for it).
SUMMARY_PREFIX = "job clock: "


def process_start_epoch() -> float:
    """Epoch seconds at which this process started (Linux: /proc/self/stat field 22, in clock
    ticks since boot); elsewhere the time this module was imported."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            # The command name (field 2) may hold spaces: fields after it follow the last ')'.
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of the whole line
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


class JobClock:
    """Seconds per part of a job, charged lap by lap from the process's start."""

    def __init__(self, start_epoch: float | None = None) -> None:
        self.start_epoch = process_start_epoch() if start_epoch is None else start_epoch
        # perf_counter at the process start: the clock runs on perf_counter from here on.
        self._origin = time.perf_counter() - (time.time() - self.start_epoch)
        self._last = self._origin
        self.parts: dict[str, float] = {}

    def lap(self, part: str) -> float:
        """Charge the seconds since the previous lap to ``part`` (added to it); returns them."""
        now = time.perf_counter()
        seconds = now - self._last
        self._last = now
        self.parts[part] = self.parts.get(part, 0.0) + seconds
        return seconds

    def move(self, seconds: float, source: str, part: str) -> None:
        """Re-label ``seconds`` already charged to ``source`` as ``part``."""
        self.parts[source] = self.parts.get(source, 0.0) - seconds
        self.parts[part] = self.parts.get(part, 0.0) + seconds

    def elapsed(self) -> float:
        """Seconds from the process's start to now."""
        return time.perf_counter() - self._origin

    def summary(self) -> str:
        """One line: SUMMARY_PREFIX and JSON with the process's start and end (epoch seconds, the
        end being the last lap) and the parts in seconds."""
        end = self.start_epoch + (self._last - self._origin)
        parts = {k: round(v, 4) for k, v in self.parts.items()}
        return SUMMARY_PREFIX + json.dumps(
            {"start": round(self.start_epoch, 4), "end": round(end, 4), "parts": parts}
        )


# The clock of this process (one job per process).
CLOCK = JobClock()
