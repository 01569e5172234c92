"""The study over networks (config/families.yaml) on a tiny scale through Snakemake: every
activation with the output layer fixed and trained, trained, collected, checked and drawn."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import xarray as xr

from helpers import REPO
from helpers.workflow import copy_workflow, snakemake

TINY = REPO / "tests" / "configs" / "families_tiny.yaml"


@pytest.mark.slow
def test_tiny_study_over_networks_runs_through_the_workflow(tmp_path) -> None:
    root = copy_workflow(tmp_path)
    shutil.copy(TINY, root / "families_tiny.yaml")
    result = snakemake(
        root, "--cores", "2", "--configfile", "families_tiny.yaml", "--replace-workflow-config"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = root / "results" / "tiny_families"
    with xr.open_dataset(out / "tiny_families.nc") as ds:
        assert ds.sizes["model_activation"] == 5 and ds.sizes["model_train_output"] == 2
        assert int(ds["diverged"].sum()) == 0
    checks = pd.read_csv(out / "checks.csv")
    rows = checks[checks["check"] == "families_vs_relu"]
    assert len(rows) == 9 and rows["ci_low"].notna().all()
    assert not checks["check"].isin(["error_below_bound", "dist_below_bound"]).any()
    for name in ("families_distance", "families_gap", "rate_tightness"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
        summary = (out / "figures" / f"{name}.summary.html").read_text()
        assert "tanh" in summary or name == "rate_tightness"
