"""Other activations and a trained output layer (issue 29): does the m^-1/4 rate of
||theta(T) - theta*|| hold beyond relu with the output layer fixed?

The study (config/families.yaml) sweeps `model.activation` and `model.train_output` on the
Figure 1 data over several data draws. Each combination of the two is one network ("family").
The paper's own checks (`dist_to_target`, `gap_linearized`, ...) and the rate study's
(`minnorm.analysis.beyond.rates`: local slopes, upper-half exponent against -1/4 and -1/2,
curvature) already give one row per family, because they run once per combination of the swept
values. This module adds what needs the families side by side:

- `family_curves`: per family and quantity, the geometric mean of the final value at each width
  and the exponent over all widths (`fit_power_law`, intervals over the data draws), for the
  figures;
- the finding `families_vs_relu`: for each family, the exponent in m of the per-run ratio
  d_family / d_relu on the same (data draw, init seed, width), i.e. the family's exponent minus
  relu's with the shared data and W0 paired out (the runs of all families start from the same
  W0 and, with the same signs, the same a0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from minnorm.analysis.check_spec import FINDING, CheckSpec, Outcome
from minnorm.analysis.collect import WidthData, combinations, width_data
from minnorm.analysis.powerlaw import PowerLawFit, fit_power_law
from minnorm.analysis.width_claims import (
    basis_text,
    draw_estimates,
    estimate_outcome,
    interval_text,
    not_applicable,
)

# The swept dims that name a family, and the papers' network among them.
FAMILY_DIMS: tuple[str, ...] = ("model_activation", "model_train_output")
PAPER_FAMILY: dict[str, object] = {"model_activation": "relu", "model_train_output": False}
# A width exponent needs three widths to be a fit rather than a line through two points.
MIN_WIDTHS = 3
# The quantities the study's figures draw: the distance and the function-space gap.
DISTANCE, FUNCTION_GAP = "dist_to_target", "gap_linearized"


def family_dims(ds: xr.Dataset) -> tuple[str, ...]:
    """The family dims swept in `ds` (with any number of values)."""
    return tuple(d for d in FAMILY_DIMS if d in ds.dims)


def family_value(ds: xr.Dataset, dim: str) -> object:
    """The family setting `dim` of a slice: its scalar coordinate, else the paper's value."""
    if dim in ds.coords and ds[dim].ndim == 0:
        value = ds[dim].item()
        return bool(value) if dim == "model_train_output" else str(value)
    return PAPER_FAMILY[dim]


def family_slices(ds: xr.Dataset) -> list[tuple[str, xr.Dataset]]:
    """(label, slice) for each family of a collected Dataset (every other swept dim at its first
    value), in coordinate order; the label names activation and train_output."""
    others = combinations(ds, exclude=FAMILY_DIMS)[0][1]  # lr, label noise, other settings
    ds = ds.isel(others) if others else ds
    dims = family_dims(ds)
    out = []
    for index in np.ndindex(*(ds.sizes[d] for d in dims)):
        sel = ds.isel(dict(zip(dims, index, strict=True))) if dims else ds
        out.append((family_label(sel), sel))
    return out


def family_label(sel: xr.Dataset) -> str:
    """ "tanh, a trained" / "relu, a fixed" for a slice at one family."""
    trained = family_value(sel, "model_train_output")
    return f"{family_value(sel, 'model_activation')}, a {'trained' if trained else 'fixed'}"


@dataclass(frozen=True)
class FamilyCurve:
    """One family's final `quantity` over the widths: widths (k,), geometric means (k,), the
    exponent over all widths (None when it cannot be fitted) and what it rests on."""

    label: str
    widths: np.ndarray
    means: np.ndarray
    fit: PowerLawFit | None
    basis: str


def family_curves(ds: xr.Dataset, quantity: str) -> list[FamilyCurve]:
    """`FamilyCurve` of the final `quantity` for each family of `ds`."""
    curves = []
    for label, sel in family_slices(ds):
        data = width_data(sel, sel[quantity])
        widths = np.unique(data.m)
        with np.errstate(all="ignore"):
            means = np.array([_geometric_mean(data.values[data.m == w]) for w in widths])
        fit = None
        try:
            fit = fit_power_law(data.m, data.values, draw=data.draw)
        except ValueError:
            pass
        curves.append(FamilyCurve(label, widths, means, fit, basis_text(data, sel)))
    return curves


def _geometric_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(finite).mean())) if finite.size else np.nan


def curve_lines(curves: list[FamilyCurve], what: str) -> list[str]:
    """Plain-text lines: each family's exponent of `what` with its intervals."""
    return [
        f"{c.label}: exponent of {what} "
        + (interval_text(c.fit) if c.fit is not None else "not fitted")
        + f" ({c.basis})"
        for c in curves
    ]


def has_families(ds: xr.Dataset) -> bool:
    """A study over networks: a family dim with two or more values, relu with a fixed output
    layer among the families, and at least MIN_WIDTHS widths."""
    swept = [d for d in family_dims(ds) if ds.sizes[d] > 1]
    if not swept or int(ds.sizes.get("width", 1)) < MIN_WIDTHS:
        return False
    return any(
        all(family_value(sel, d) == PAPER_FAMILY[d] for d in FAMILY_DIMS)
        for _, sel in family_slices(ds)
    )


def _paper_slice(ds: xr.Dataset) -> xr.Dataset:
    for _, sel in family_slices(ds):
        if all(family_value(sel, d) == PAPER_FAMILY[d] for d in FAMILY_DIMS):
            return sel
    raise ValueError("no relu run with a fixed output layer")


def _versus_relu(ds: xr.Dataset) -> list[Outcome]:
    """evaluate(ds) of `families_vs_relu`: one finding per family other than the paper's."""
    try:
        relu = width_data(_paper_slice(ds), _paper_slice(ds)[DISTANCE])
    except (KeyError, ValueError) as exc:
        return [not_applicable(f"cannot compute: {exc}")]
    outs = []
    for label, sel in family_slices(ds):
        if all(family_value(sel, d) == PAPER_FAMILY[d] for d in FAMILY_DIMS):
            continue
        try:
            mine = width_data(sel, sel[DISTANCE])
            ratio = WidthData(relu.m, mine.values / relu.values, relu.draw, relu.seed)
            fit = fit_power_law(ratio.m, ratio.values, draw=ratio.draw)
        except (KeyError, ValueError) as exc:
            outs.append(not_applicable(f"cannot fit: {exc}", label))
            continue
        outs.append(
            estimate_outcome(
                fit,
                None,
                setting=label,
                basis=basis_text(ratio, sel, fit.widths),
                draws=draw_estimates(fit),
            )
        )
    return outs


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "families_vs_relu",
        FINDING,
        "exponent of ||theta(T)-theta*|| in m relative to relu with a fixed output layer "
        "(paired on data draw, seed and width)",
        "OLS exponent in m of ||theta(T)-theta*|| / ||W(T)-W*||_relu over all widths",
        "finding (no verdict): 0 means the same rate as relu",
        "experiments that sweep model.activation or model.train_output, relu with a fixed "
        f"output layer among them, >= {MIN_WIDTHS} widths",
        has_families,
        _versus_relu,
        quantity="exponent difference against relu, fixed a",
    ),
)
