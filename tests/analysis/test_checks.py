"""Tests for minnorm.analysis.checks: the power-law fit against known slopes and verdicts that
flip."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import linregress

from helpers import REPO
from helpers.runs import Truth, write_runs
from minnorm.analysis.beyond import BEYOND_CHECKS
from minnorm.analysis.checks import _NOISE as _NOISE_TEXT
from minnorm.analysis.checks import _WIDTHS as _WIDTH_TEXT
from minnorm.analysis.checks import (
    CHECKS,
    COLUMNS,
    DIST_FROM_INIT_MAX_ABS_EXPONENT,
    NOT_ENOUGH_SEEDS,
    VERDICT_COLORS,
    CheckSpec,
    Outcome,
    checks_html,
    checks_markdown,
    fit_power_law,
    read_checks_csv,
    summary_checks,
    theorem_checks,
    write_checks,
)
from minnorm.analysis.collect import collect_experiment

WIDTHS = np.array([500.0, 1000.0, 2000.0, 4000.0, 8000.0])


def _synthetic_values(seeds: int, exponent: float = -0.25, sigma: float = 0.1, rng_seed: int = 3):
    rng = np.random.default_rng(rng_seed)
    return (
        3.0
        * WIDTHS[:, None] ** exponent
        * np.exp(sigma * rng.standard_normal((WIDTHS.size, seeds)))
    )


def test_fit_matches_linregress_on_log_log():
    values = _synthetic_values(5)
    fit = fit_power_law(WIDTHS, values)
    ref = linregress(np.repeat(np.log(WIDTHS), 5), np.log(values).ravel())
    assert fit.exponent == pytest.approx(ref.slope, rel=1e-12)
    assert fit.prefactor == pytest.approx(np.exp(ref.intercept), rel=1e-12)


def test_fit_recovers_known_slope_within_ci():
    fit = fit_power_law(WIDTHS, _synthetic_values(8))
    assert fit.ci_low < -0.25 < fit.ci_high
    assert fit.exponent == pytest.approx(-0.25, abs=0.05)
    assert fit.ci_low < fit.exponent < fit.ci_high


def test_ci_shrinks_with_more_seeds():
    widths = [fit_power_law(WIDTHS, _synthetic_values(s)) for s in (3, 30)]
    few, many = (f.ci_high - f.ci_low for f in widths)
    assert many < 0.5 * few  # sqrt(30 / 3) ~ 3.2 expected


def test_long_form_equals_wide_form():
    values = _synthetic_values(4)
    wide = fit_power_law(WIDTHS, values, seed=7)
    long = fit_power_law(np.repeat(WIDTHS, 4), values.ravel(), seed=7)
    assert long.exponent == pytest.approx(wide.exponent, rel=1e-12)
    assert (long.ci_low, long.ci_high) == pytest.approx((wide.ci_low, wide.ci_high), rel=1e-12)


def test_fit_ignores_nan_and_rejects_bad_input():
    values = _synthetic_values(3)
    values[0, 1] = np.nan
    assert np.isfinite(fit_power_law(WIDTHS, values).exponent)
    with pytest.raises(ValueError, match="two or more widths"):
        fit_power_law(WIDTHS[:1], values[:1])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law(WIDTHS, -values)
    with pytest.raises(ValueError, match="shape"):
        fit_power_law(WIDTHS, values[:2])


def test_band_brackets_the_fit():
    fit = fit_power_law(WIDTHS, _synthetic_values(5))
    low, high = fit.band(WIDTHS)
    assert np.all(low < fit.predict(WIDTHS)) and np.all(fit.predict(WIDTHS) < high)


def _checks(
    tmp_path, name="w", widths=(250, 500, 1000, 2000), seeds=(0, 1, 2), noises=(0.0,), **kwargs
) -> pd.DataFrame:
    paths = write_runs(tmp_path / name, widths=widths, seeds=seeds, label_noises=noises, **kwargs)
    return theorem_checks({name: collect_experiment(paths)})


def _verdict(df: pd.DataFrame, claim_start: str) -> str:
    rows = df[df.claim.str.startswith(claim_start)]
    assert len(rows) == 1, f"expected one row starting {claim_start!r}, got {list(df.claim)}"
    return rows.verdict.item()


# The papers' own checks; the studies beyond the paper (minnorm.analysis.beyond) have their own
# tests.
PAPER_CLAIMS = [s.claim for s in CHECKS.values() if s not in BEYOND_CHECKS]


def _paper_rows(df):
    return df[df.claim.isin(PAPER_CLAIMS)]


def test_width_experiment_passes_on_theory_like_data(tmp_path):
    df = _paper_rows(_checks(tmp_path))
    assert list(df.columns) == COLUMNS
    assert set(df.verdict) == {"pass"}
    # width-only experiment: no label-noise claims
    assert not df.claim.str.contains("label noise").any()
    dist = df[df.claim.str.startswith("||W(T)-W*||")]
    assert dist.measured.item() == pytest.approx(-0.25, abs=0.05)


@pytest.mark.parametrize(
    ("truth", "claim"),
    [
        (Truth(dist_exponent=0.1), "||W(T)-W*||"),
        (Truth(dist_exponent=-0.08), "||W(T)-W*||"),
        (Truth(init_exponent=2 * DIST_FROM_INIT_MAX_ABS_EXPONENT), "||W(T)-W0|| roughly"),
        (Truth(gap_exponent=0.1), "network-to-linearized"),
        (Truth(loss_ratio=0.5), "train loss"),
    ],
)
def test_width_verdict_flips(tmp_path, truth, claim):
    df = _paper_rows(_checks(tmp_path, truth=truth))
    assert _verdict(df, claim) == "fail"
    assert (df.verdict == "fail").sum() == 1


def test_divergence_is_reported_and_excluded(tmp_path):
    df = _checks(tmp_path, special={(500, 1, 0.0, 0.01): {"diverge_at": 200, "truncate": True}})
    row = df[df.claim.str.startswith("no run diverged")]
    assert row.verdict.item() == "fail" and row.measured.item() == 1
    assert "1 of 12 runs diverged: width=500, seed=1" in row.detail.item()
    # the diverged run's high loss does not fail the loss check
    assert _verdict(df, "train loss") == "pass"


def _arora(tmp_path, truth=None):
    truth = Truth() if truth is None else truth
    return _checks(
        tmp_path,
        name="a",
        widths=(1000,),
        seeds=(0, 1, 2),
        noises=(0.0, 0.25, 0.5, 0.75, 1.0),
        truth=truth,
    )


def test_noise_experiment_passes_on_theory_like_data(tmp_path):
    df = _arora(tmp_path)
    assert set(df.verdict) == {"pass"}
    assert _verdict(df, "test error rises") == "pass"
    assert df[df.claim.str.startswith("test error rises")].measured.item() == pytest.approx(1.0)
    # bound 0.3 + 0.5 p against error 0.05 + 0.4 p: worst ratio at p = 1 is 0.45 / 0.8
    ratio = df[df.claim.str.startswith("test error below")].measured.item()
    assert ratio == pytest.approx(0.45 / 0.8, rel=0.1)
    assert not df.claim.str.contains("exponent of m").any()


@pytest.mark.parametrize(
    ("truth", "claim"),
    [
        (Truth(error_slope=-0.04), "test error rises"),
        (Truth(error_intercept=0.5), "test error below"),
        (Truth(init_fraction=1.5), "||W(T)-W0|| <="),
    ],
)
def test_noise_verdict_flips(tmp_path, truth, claim):
    df = _arora(tmp_path, truth)
    assert _verdict(df, claim) == "fail"


def test_single_seed_gives_no_ci_and_no_ci_verdict(tmp_path):
    df = _checks(tmp_path, seeds=(0,))
    for claim in ("||W(T)-W*||", "network-to-linearized"):
        row = df[df.claim.str.startswith(claim)]
        assert row.verdict.item() == NOT_ENOUGH_SEEDS
        assert "CI undefined (fewer than 2 seeds at some width)" in row.detail.item()
        assert "CI [" not in row.detail.item()
    # a verdict without a CI is still given, from the point estimate
    assert _verdict(df, "||W(T)-W0|| roughly") == "pass"


def test_fit_with_one_seed_at_a_width_has_no_ci():
    values = _synthetic_values(3)
    values[2, 1:] = np.nan
    fit = fit_power_law(WIDTHS, values)
    assert not fit.ci_defined and np.isnan(fit.ci_low) and np.isnan(fit.ci_high)
    assert fit.min_seeds == 1 and "undefined" in fit.ci_text()
    with pytest.raises(ValueError, match="undefined"):
        fit.band(WIDTHS)
    # the point estimate is the same least-squares fit as with a CI
    assert fit.exponent == pytest.approx(
        linregress(
            np.log(np.repeat(WIDTHS, 3)[np.isfinite(values.ravel())]),
            np.log(values.ravel()[np.isfinite(values.ravel())]),
        ).slope,
        rel=1e-12,
    )


def test_registry_declares_each_check_once_and_drives_the_table(tmp_path):
    assert len({spec.claim for spec in CHECKS.values()}) == len(CHECKS)
    assert all(name == spec.name for name, spec in CHECKS.items())
    width_df, noise_df = _paper_rows(_checks(tmp_path / "w")), _paper_rows(_arora(tmp_path / "a"))
    paper = [s for s in CHECKS.values() if s not in BEYOND_CHECKS]
    assert list(width_df.claim) == [s.claim for s in paper if s.applies_to != _NOISE_TEXT]
    assert list(noise_df.claim) == [s.claim for s in paper if s.applies_to != _WIDTH_TEXT]
    # The studies' checks come after the papers' own, each registered once.
    assert list(CHECKS.values())[len(paper) :] == list(BEYOND_CHECKS)
    for df in (width_df, noise_df):
        thresholds = {s.claim: s.threshold for s in CHECKS.values()}
        assert all(thresholds[c] == t for c, t in zip(df.claim, df.threshold, strict=True))


def test_a_registered_check_gets_a_row(tmp_path, monkeypatch):
    spec = CheckSpec(
        "steps",
        "enough steps (number of steps)",
        "recorded steps",
        ">= 2",
        "every experiment",
        lambda ds: True,
        lambda ds: Outcome(
            ds.sizes["step"],
            "pass" if ds.sizes["step"] >= 2 else "fail",
            "from the step coordinate",
        ),
    )
    monkeypatch.setitem(CHECKS, "steps", spec)
    df = _checks(tmp_path)
    row = df[df.claim == "enough steps (number of steps)"]
    assert row.verdict.item() == "pass" and row.measured.item() > 2


def test_summary_keeps_every_experiment_with_a_checks_file(tmp_path):
    results = tmp_path / "results"
    for exp, kw in (("b_widths", {}), ("a_noise", {"widths": (1000,), "noises": (0.0, 1.0)})):
        df = _checks(tmp_path / "runs", name=exp, **kw)
        (results / exp).mkdir(parents=True)
        write_checks(df, *(results / exp / f"checks.{x}" for x in ("csv", "md", "html")))
    (results / "logs").mkdir()  # folders without a checks file are not experiments
    only_b = summary_checks(results, ["b_widths"])
    assert list(dict.fromkeys(only_b.experiment)) == ["b_widths", "a_noise"]
    both = summary_checks(results, [])
    assert list(dict.fromkeys(both.experiment)) == ["a_noise", "b_widths"]
    # the summary's rows are the experiments' rows, numbers exactly as written
    b_rows = read_checks_csv(results / "b_widths" / "checks.csv")
    pd.testing.assert_frame_equal(
        only_b[only_b.experiment == "b_widths"].reset_index(drop=True), b_rows
    )
    assert summary_checks(tmp_path / "empty").columns.tolist() == COLUMNS


def test_unreadable_checks_file_is_named(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "checks.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="e/checks.csv.*columns"):
        summary_checks(tmp_path)


def test_html_table_shows_verdicts_coloured_and_escaped():
    df = pd.DataFrame(
        [
            ["e", "||W|| < 1", 0.123456, "< 1", "pass", "x"],
            ["e", "other", float("nan"), "< 1", NOT_ENOUGH_SEEDS, "y & z"],
        ],
        columns=COLUMNS,
    )
    text = checks_html(df)
    assert text.count("<tr>") == 3 and "<th>verdict</th>" in text
    assert "<td>||W|| &lt; 1</td><td>0.1235</td>" in text
    assert f'background:{VERDICT_COLORS["pass"]};color:#111111;font-weight:bold">pass</td>' in text
    assert (
        f"background:{VERDICT_COLORS[NOT_ENOUGH_SEEDS]};"
        'color:#111111;font-weight:bold">not enough seeds' in text
    )
    assert "y &amp; z" in text


def test_markdown_escapes_pipes_and_formats_numbers():
    df = pd.DataFrame(
        [
            ["e", "||W|| small", 0.123456, "< 1", "pass", "x"],
            ["e", "other", float("nan"), "< 1", "n/a", "y"],
        ],
        columns=COLUMNS,
    )
    text = checks_markdown(df)
    lines = text.splitlines()
    assert lines[0] == "| experiment | claim | measured | threshold | verdict | detail |"
    assert lines[2] == "| e | \\|\\|W\\|\\| small | 0.1235 | < 1 | pass | x |"
    assert lines[3] == "| e | other | n/a | < 1 | n/a | y |"


def test_checks_caption_states_the_thresholds():
    from minnorm.analysis import checks

    text = (REPO / "workflow" / "report" / "checks.rst").read_text()
    for value in (
        checks.DIST_TO_TARGET_MAX_EXPONENT,
        checks.DIST_TO_TARGET_EXPECTED_EXPONENT,
        checks.DIST_FROM_INIT_MAX_ABS_EXPONENT,
        checks.TRAIN_LOSS_MAX_RATIO,
        checks.ERROR_NOISE_MIN_SPEARMAN,
        checks.ERROR_BOUND_MAX_RATIO,
        checks.DIST_FROM_INIT_BOUND_SLACK,
        checks.N_BOOT,
    ):
        assert f"{value:g}" in text, f"checks.rst does not state {value:g}"
    assert f"{checks.CI_LEVEL:.0%}" in text
