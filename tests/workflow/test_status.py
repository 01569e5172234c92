"""`make status` (minnorm.workflow.status): progress of a run from its files."""

from __future__ import annotations

import yaml

from helpers import REPO
from minnorm.config import validate_config
from minnorm.workflow import status
from minnorm.workflow.invocation import write_last_run_config


def test_status_counts_finished_and_started_runs_and_shows_the_latest_log(tmp_path, capsys):
    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        config = validate_config(yaml.safe_load(handle))
    write_last_run_config(config, tmp_path / "results" / "last_run_config.yaml")
    sphere = tmp_path / "results" / "tiny_sphere"
    # tiny_sphere: 3 widths x 2 seeds = 6 runs; two finished, one started (checkpoint only).
    for name in ("m64/s0_p0_lr0.01.nc", "m64/s1_p0_lr0.01.nc"):
        (sphere / "runs" / name).parent.mkdir(parents=True, exist_ok=True)
        (sphere / "runs" / name).write_bytes(b"x")
    (sphere / "checkpoints" / "m128").mkdir(parents=True)
    (sphere / "checkpoints" / "m128" / "s0_p0_lr0.01.ckpt").write_bytes(b"x")
    # A checkpoint next to a finished run does not count as started.
    (sphere / "checkpoints" / "m64").mkdir(parents=True)
    (sphere / "checkpoints" / "m64" / "s0_p0_lr0.01.ckpt").write_bytes(b"x")
    (sphere / "logs" / "runs").mkdir(parents=True)
    (sphere / "logs" / "runs" / "m128.log").write_text(
        "first\nrun 1/2: step 20/50, 900 steps/s, ETA 1 s\n\n"
    )

    assert status.main(["--directory", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "snakemake: not running here"
    assert lines[1] == "tiny_sphere: 2/6 runs done, 1 started (checkpoint)"
    assert (
        lines[2]
        == "  results/tiny_sphere/logs/runs/m128.log: run 1/2: step 20/50, 900 steps/s, ETA 1 s"
    )
    # tiny_digits: 1 width x 2 seeds x 2 noise levels = 4 runs, none yet.
    assert lines[3] == "tiny_digits: 0/4 runs done"
    assert lines[4] == "tiny_beyond: 0/64 runs done"
    assert lines[5] == "checks table: not yet"


def test_status_without_a_run_says_so(tmp_path, capsys):
    assert status.main(["--directory", str(tmp_path)]) == 1
    assert "no run has started" in capsys.readouterr().err


def test_status_names_the_runs_whose_gram_matrix_needed_the_pseudo_inverse(tmp_path, capsys):
    import xarray as xr

    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        config = validate_config(yaml.safe_load(handle))
    write_last_run_config(config, tmp_path / "results" / "last_run_config.yaml")
    target = tmp_path / "results" / "tiny_sphere" / "target"
    target.mkdir(parents=True)
    for name, used, cond in (("m64_s1_p0.nc", 1, 2.5e17), ("m128_s0_p0.nc", 0, 40.0)):
        xr.Dataset({"used_pinv": ((), used), "cond_G": ((), cond)}).to_netcdf(target / name)
    (target / "m256_s0_p0.nc").write_bytes(b"being written")  # unreadable: skipped
    assert status.main(["--directory", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    warnings = [line for line in lines if "pseudo-inverse" in line]
    assert warnings == [
        "  warning: G singular or ill-conditioned (cond_G 2.5e+17), pseudo-inverse target: "
        "results/tiny_sphere/target/m64_s1_p0.nc; runs: s1_p0_lr0.01"
    ]
    assert lines.index(warnings[0]) == lines.index("tiny_sphere: 0/6 runs done") + 1
