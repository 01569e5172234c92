"""Collected Datasets with data draws: several experiments' worth of runs stacked along the
`data_seed` dim, as the workflow collects a sweep of `data.seed`."""

from __future__ import annotations

import xarray as xr

from minnorm.config.sweep import SETTING_ATTR

DRAW_DIM = "data_seed"


def stack_draws(collected: list[xr.Dataset], draws: list[int]) -> xr.Dataset:
    """The collected Datasets of each draw, one per element of `draws`, as one Dataset with a
    `data_seed` dim (a swept setting, as collect_experiment makes it)."""
    out = xr.concat(
        [ds.expand_dims({DRAW_DIM: [d]}) for ds, d in zip(collected, draws, strict=True)],
        dim=DRAW_DIM,
        data_vars="all",
        coords="minimal",
        compat="override",
        join="outer",
    )
    out[DRAW_DIM].attrs[SETTING_ATTR] = "data.seed"
    # Variables without the dim (e.g. none here) keep it out; every run variable gets it.
    return out.transpose(DRAW_DIM, ...).transpose(
        *[d for d in ("width", "seed", "label_noise", "lr") if d in out.dims], ...
    )
