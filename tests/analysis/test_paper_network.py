"""Checks of the papers' network only (the Arora et al. bound) get no rows for other networks."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from minnorm.analysis.check_spec import paper_network
from minnorm.analysis.checks import CHECKS


def _collected(model: dict, **dims: list) -> xr.Dataset:
    coords = {name: (name, np.array(values)) for name, values in dims.items()}
    return xr.Dataset(coords=coords, attrs={"config": json.dumps({"model": model})})


def test_paper_network_reads_the_swept_dims_and_the_shared_config() -> None:
    assert paper_network(_collected({"bias": True, "kappa": 1.0}))
    assert paper_network(xr.Dataset())
    assert not paper_network(_collected({"activation": "tanh"}))
    assert not paper_network(_collected({"train_output": True}))
    assert paper_network(_collected({}, model_activation=["relu"]))
    assert not paper_network(_collected({}, model_activation=["relu", "erf"]))
    assert not paper_network(_collected({}, model_train_output=[False, True]))


def test_the_bound_checks_apply_to_the_papers_network_only() -> None:
    bound_checks = {name for name, spec in CHECKS.items() if spec.needs_paper_network}
    assert bound_checks == {"error_below_bound", "dist_below_bound"}
    spec = CHECKS["dist_below_bound"]
    relu = _collected({}, label_noise=[0.0, 0.5])
    assert spec.applicable(relu)
    assert not spec.applicable(_collected({"activation": "softplus"}, label_noise=[0.0, 0.5]))
    # Checks that hold for any network are unaffected.
    assert CHECKS["error_rises"].applicable(
        _collected({"activation": "softplus"}, label_noise=[0.0, 0.5])
    )
