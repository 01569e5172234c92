"""Tests for minnorm.analysis.checks: kinds, three-valued verdicts that follow the data, one row
per combination of swept values, data draws as the interval's units, and the table files."""

import numpy as np
import pandas as pd
import pytest

from helpers import REPO
from helpers.draws import stack_draws
from helpers.runs import Truth, write_runs
from minnorm.analysis.beyond import BEYOND_CHECKS
from minnorm.analysis.check_spec import CLAIM, DETERMINISTIC, FINDING, VERDICTS
from minnorm.analysis.check_tables import (
    VERDICT_COLORS,
    checks_html,
    checks_markdown,
    read_checks_csv,
    read_estimates_csv,
    summary_checks,
    summary_estimates,
    write_checks,
)
from minnorm.analysis.checks import (
    _NOISE as _NOISE_TEXT,
)
from minnorm.analysis.checks import (
    CHECKS,
    COLUMNS,
    CheckSpec,
    Outcome,
    experiment_tables,
    theorem_checks,
)
from minnorm.analysis.collect import collect_experiment
from minnorm.analysis.powerlaw import fit_power_law


def _collected(tmp_path, name="w", widths=(250, 500, 1000, 2000), seeds=(0, 1, 2), **kwargs):
    noises = kwargs.pop("noises", (0.0,))
    paths = write_runs(tmp_path / name, widths=widths, seeds=seeds, label_noises=noises, **kwargs)
    return collect_experiment(paths)


def _checks(tmp_path, name="w", **kwargs) -> pd.DataFrame:
    return theorem_checks({name: _collected(tmp_path, name, **kwargs)})


def _row(df: pd.DataFrame, check: str) -> pd.Series:
    rows = df[df.check == check]
    assert len(rows) == 1, f"expected one {check!r} row, got {len(rows)}: {list(df.check)}"
    return rows.iloc[0]


PAPER = [s for s in CHECKS.values() if s not in BEYOND_CHECKS]


def _paper_rows(df):
    return df[df.check.isin([s.name for s in PAPER])]


def test_every_check_has_a_kind_and_its_verdict_words():
    assert {s.kind for s in CHECKS.values()} == {DETERMINISTIC, CLAIM, FINDING}
    assert VERDICTS[CLAIM] == ("supported", "contradicted", "inconclusive", "n/a")
    assert VERDICTS[DETERMINISTIC] == ("pass", "fail", "n/a")
    # Findings never pass or fail; claims never pass or fail either.
    assert "fail" not in VERDICTS[FINDING] and "fail" not in VERDICTS[CLAIM]


def test_theory_like_width_experiment_supports_every_claim(tmp_path):
    # Rates inside the claims' regions by more than the interval's half-width.
    df = _paper_rows(_checks(tmp_path, truth=Truth(dist_exponent=-0.3, gap_exponent=-0.6)))
    assert list(df.columns) == COLUMNS
    assert dict(zip(df.check, df.verdict, strict=True)) == {
        "train_loss": "pass",
        "diverged": "pass",
        "gram_conditioned": "pass",
        "dist_to_target": "supported",
        "dist_from_init": "supported",
        "gap_linearized": "supported",
    }
    dist = _row(df, "dist_to_target")
    assert dist.kind == CLAIM and dist.measured == pytest.approx(-0.3, abs=0.05)
    assert dist.ci_low < dist.measured < dist.ci_high
    assert "conditional on the one data draw" in dist.detail
    assert "widths 250-2000 (4), 1 data draw x 3 seeds, lr 0.01, 1000 steps" in dist.detail
    # a claim about large m also reports the curvature (the trend of the local exponent)
    assert "change of the local exponent per doubling of m " in dist.detail


@pytest.mark.parametrize(
    ("truth", "check", "verdict"),
    [
        (Truth(dist_exponent=0.1), "dist_to_target", "contradicted"),
        # On the boundary of the region (-1/4 + 0.05): neither side can be shown.
        (Truth(dist_exponent=-0.2), "dist_to_target", "inconclusive"),
        (Truth(dist_exponent=-0.3, noise_sigma=1.0), "dist_to_target", "inconclusive"),
        (Truth(init_exponent=0.4), "dist_from_init", "contradicted"),
        (Truth(gap_exponent=0.1), "gap_linearized", "contradicted"),
        (Truth(loss_ratio=0.5), "train_loss", "fail"),
    ],
)
def test_verdicts_follow_the_data(tmp_path, truth, check, verdict):
    df = _paper_rows(_checks(tmp_path, truth=truth))
    assert _row(df, check).verdict == verdict


def test_an_interval_too_wide_to_decide_is_inconclusive_not_a_pass(tmp_path):
    """The old rule "the CI contains the claimed value" passed whenever the CI was wide."""
    truth = Truth(noise_sigma=0.5)
    df = _checks(tmp_path, widths=(500, 1000, 2000), seeds=(0, 1), truth=truth)
    row = _row(df, "dist_to_target")
    assert row.ci_low < -0.25 < row.ci_high and row.ci_high - row.ci_low > 1.0
    assert row.verdict == "inconclusive"


def test_divergence_is_reported_and_excluded(tmp_path):
    df = _checks(tmp_path, special={(500, 1, 0.0, 0.01): {"diverge_at": 200, "truncate": True}})
    row = _row(df, "diverged")
    assert row.verdict == "fail" and row.measured == 1
    assert "1 of 12 runs diverged: width=500, seed=1" in row.detail
    assert _row(df, "train_loss").verdict == "pass"
    assert "1 diverged or missing runs left out" in _row(df, "dist_to_target").detail


def test_width_checks_run_once_per_combination_of_swept_values(tmp_path):
    """Two lrs (and two label-noise levels) give one row per combination, never a pooled fit or
    a silent first value; each row names its combination."""
    collected = _collected(
        tmp_path,
        lrs=(0.01, 0.02),
        noises=(0.0, 0.5),
        special={
            (w, s, p, 0.02): {"truth": Truth(dist_exponent=0.2)}
            for w in (250, 500, 1000, 2000)
            for s in (0, 1, 2)
            for p in (0.0, 0.5)
        },
    )
    df = theorem_checks({"w": collected})
    rows = df[df.check == "dist_to_target"]
    assert list(rows.setting) == [
        "lr=0.01, label_noise=0",
        "lr=0.01, label_noise=0.5",
        "lr=0.02, label_noise=0",
        "lr=0.02, label_noise=0.5",
    ]
    assert list(rows.verdict) == ["supported", "supported", "contradicted", "contradicted"]
    assert rows.measured.iloc[2] == pytest.approx(0.2, abs=0.05)


def test_data_draws_are_the_units_of_the_interval(tmp_path):
    """With three draws whose slopes differ, the interval is the t interval on the per-draw
    slopes (2 df) and the estimates table lists each draw's own fit."""
    exps = (-0.22, -0.30, -0.38)
    draws = [
        _collected(tmp_path / f"d{k}", truth=Truth(dist_exponent=e)) for k, e in enumerate(exps)
    ]
    ds = stack_draws(draws, [0, 1, 2])
    checks, estimates = experiment_tables({"x": ds})
    row = _row(checks, "dist_to_target")
    per_draw = [fit_power_law(*_final(d), draw=None).exponent for d in draws]
    assert row.measured == pytest.approx(np.mean(per_draw), rel=1e-12)
    half = 4.302652729911275 * np.std(per_draw, ddof=1) / np.sqrt(3)  # t_{0.975, 2}
    assert (row.ci_low, row.ci_high) == pytest.approx(
        (np.mean(per_draw) - half, np.mean(per_draw) + half), rel=1e-9
    )
    assert "3 data draws x 3 seeds" in row.detail and "over 3 draws" in row.detail
    mine = estimates[estimates.check == "dist_to_target"]
    assert list(mine.draw) == ["all", "0", "1", "2"]
    assert mine.estimate.iloc[1:].tolist() == pytest.approx(per_draw, rel=1e-12)


def _final(ds):
    from minnorm.analysis.collect import width_data

    sel = ds.isel(lr=0, label_noise=0)
    data = width_data(sel, sel["dist_to_target"])
    return data.m, data.values


def _arora(tmp_path, truth=None):
    return _checks(
        tmp_path,
        name="a",
        widths=(1000,),
        noises=(0.0, 0.25, 0.5, 0.75, 1.0),
        truth=Truth() if truth is None else truth,
    )


def test_noise_experiment_passes_on_theory_like_data(tmp_path):
    df = _arora(tmp_path)
    assert set(df.verdict) == {"pass"} and set(df.kind) == {DETERMINISTIC}
    assert _row(df, "error_rises").measured == pytest.approx(1.0)
    # bound 0.3 + 0.5 p against error 0.05 + 0.4 p: worst ratio at p = 1 is 0.45 / 0.8
    below = _row(df, "error_below_bound")
    assert below.measured == pytest.approx(0.45 / 0.8, rel=0.1)
    assert below.setting == "width=1000"
    assert "bound below 1 at every noise level" in below.detail
    assert not (df.check == "dist_to_target").any()


def test_a_vacuous_bound_is_named(tmp_path):
    df = _arora(tmp_path, Truth(bound_intercept=1.5))
    detail = _row(df, "error_below_bound").detail
    assert "VACUOUS (>= 1, so it constrains no 0-1 error) at 5 of 5 noise levels" in detail


@pytest.mark.parametrize(
    ("truth", "check"),
    [
        (Truth(error_slope=-0.04), "error_rises"),
        (Truth(error_intercept=0.5), "error_below_bound"),
        (Truth(init_fraction=1.5), "dist_below_bound"),
    ],
)
def test_noise_verdict_flips(tmp_path, truth, check):
    assert _row(_arora(tmp_path, truth), check).verdict == "fail"


def test_runs_with_a_singular_gram_matrix_are_listed_with_their_condition_number(tmp_path):
    ds = _collected(tmp_path).load()
    assert _row(theorem_checks({"w": ds}), "gram_conditioned").verdict == "pass"
    flags = ds["used_pinv"].copy()
    cond = ds["cond_G"].broadcast_like(flags).copy()
    flags.loc[{"width": 500, "seed": 1}] = 1
    cond.loc[{"width": 500, "seed": 1}] = 3.5e17
    ds["used_pinv"], ds["cond_G"] = flags, cond
    row = _row(theorem_checks({"w": ds}), "gram_conditioned")
    assert row.verdict == "fail" and row.measured == 1
    assert "1 of 12 runs used the pseudo-inverse" in row.detail
    assert "width=500, seed=1" in row.detail and "cond_G=3.5e+17" in row.detail


def test_one_run_per_width_at_two_widths_has_no_interval_and_is_inconclusive(tmp_path):
    df = _checks(tmp_path, widths=(500, 1000), seeds=(0,))
    row = _row(df, "dist_to_target")
    assert np.isnan(row.ci_low) and row.verdict == "inconclusive"
    assert "no interval" in row.detail


def test_registry_declares_each_check_once_and_drives_the_table(tmp_path):
    assert len({spec.claim for spec in CHECKS.values()}) == len(CHECKS)
    assert all(name == spec.name for name, spec in CHECKS.items())
    width_df = _paper_rows(_checks(tmp_path / "w"))
    noise_df = _paper_rows(_arora(tmp_path / "a"))
    assert list(width_df.check) == [s.name for s in PAPER if s.applies_to != _NOISE_TEXT]
    assert (
        list(noise_df.check)
        == [s.name for s in PAPER if s.applies_to == _NOISE_TEXT or s.kind == DETERMINISTIC][
            : len(noise_df)
        ]
    )
    assert list(CHECKS.values())[len(PAPER) :] == list(BEYOND_CHECKS)
    for df in (width_df, noise_df):
        criteria = {s.name: s.criterion for s in CHECKS.values()}
        kinds = {s.name: s.kind for s in CHECKS.values()}
        assert all(criteria[c] == t for c, t in zip(df.check, df.criterion, strict=True))
        assert all(kinds[c] == k for c, k in zip(df.check, df.kind, strict=True))


def test_a_registered_check_gets_a_row_and_a_wrong_verdict_word_is_refused(tmp_path, monkeypatch):
    def steps(ds):
        return Outcome(ds.sizes["step"], "pass" if ds.sizes["step"] >= 2 else "fail", "steps")

    spec = CheckSpec(
        "steps", DETERMINISTIC, "enough steps", "steps", ">= 2", "all", lambda ds: True, steps
    )
    monkeypatch.setitem(CHECKS, "steps", spec)
    df = _checks(tmp_path)
    assert _row(df, "steps").verdict == "pass"
    bad = CheckSpec("bad", CLAIM, "c", "s", "x", "all", lambda ds: True, steps)
    monkeypatch.setitem(CHECKS, "bad", bad)
    with pytest.raises(ValueError, match="verdict 'pass' not in"):
        _checks(tmp_path / "again")


def test_summary_keeps_every_experiment_with_a_checks_file(tmp_path):
    results = tmp_path / "results"
    for exp, kw in (("b_widths", {}), ("a_noise", {"widths": (1000,), "noises": (0.0, 1.0)})):
        checks, estimates = experiment_tables({exp: _collected(tmp_path / "runs", exp, **kw)})
        (results / exp).mkdir(parents=True)
        files = [results / exp / f"checks.{x}" for x in ("csv", "md", "html")]
        write_checks(checks, *files, estimates, results / exp / "estimates.csv")
    (results / "logs").mkdir()  # folders without a checks file are not experiments
    only_b = summary_checks(results, ["b_widths"])
    assert list(dict.fromkeys(only_b.experiment)) == ["b_widths", "a_noise"]
    both = summary_checks(results, [])
    assert list(dict.fromkeys(both.experiment)) == ["a_noise", "b_widths"]
    b_rows = read_checks_csv(results / "b_widths" / "checks.csv")
    pd.testing.assert_frame_equal(
        only_b[only_b.experiment == "b_widths"].reset_index(drop=True), b_rows
    )
    est = summary_estimates(results, ["b_widths"])
    assert set(est.experiment) == {"b_widths"} and (est.check == "dist_to_target").any()
    pd.testing.assert_frame_equal(est, read_estimates_csv(results / "b_widths" / "estimates.csv"))
    assert summary_checks(tmp_path / "empty").columns.tolist() == COLUMNS


def test_unreadable_checks_file_is_named(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "checks.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="e/checks.csv.*columns"):
        summary_checks(tmp_path)


def _table():
    base = ["e", CLAIM, "c", "", "||W|| < 1", 0.123456, 0.1, 0.2, "< 1"]
    return pd.DataFrame(
        [
            [*base, "supported", "x"],
            [*base[:5], float("nan"), np.nan, np.nan, "< 1", "inconclusive", "y & z"],
            ["e", FINDING, "f", "lr=0.1", "other", 1.0, 0.5, 1.5, "finding", "no verdict", "w"],
        ],
        columns=COLUMNS,
    )


def test_html_table_shows_verdicts_coloured_escaped_and_counts_the_claims():
    text = checks_html(_table())
    assert text.count("<tr>") == 4 and "<th>verdict</th>" in text
    assert "<td>||W|| &lt; 1</td><td>0.1235</td>" in text
    for verdict in ("supported", "inconclusive", "no verdict"):
        assert (
            f'background:{VERDICT_COLORS[verdict]};color:#111111;font-weight:bold">{verdict}</td>'
            in text
        )
    assert "y &amp; z" in text
    assert "2 claims" in text and "2 tests, no family-wise correction" in text


def test_markdown_escapes_pipes_formats_numbers_and_opens_with_the_legend():
    lines = checks_markdown(_table()).splitlines()
    assert lines[0].startswith("3 rows: 0 deterministic (pass/fail), 2 claims")
    assert lines[2] == "| " + " | ".join(COLUMNS) + " |"
    assert lines[4] == (
        "| e | claim | c |  | \\|\\|W\\|\\| < 1 | 0.1235 | 0.1 | 0.2 | < 1 | supported | x |"
    )
    assert "| n/a | n/a | n/a |" in lines[5]


def test_checks_caption_states_the_criteria_and_the_verdict_words():
    from minnorm.analysis import checks, verdicts

    text = (REPO / "workflow" / "report" / "checks.rst").read_text()
    for value in (
        checks.DIST_FROM_INIT_MARGIN,
        checks.TRAIN_LOSS_MAX_RATIO,
        checks.ERROR_NOISE_MIN_SPEARMAN,
        checks.ERROR_BOUND_MAX_RATIO,
        checks.DIST_FROM_INIT_BOUND_SLACK,
        verdicts.EXPONENT_MARGIN,
        verdicts.EQUIVALENCE_MARGIN,
    ):
        assert f"{value:g}" in text, f"checks.rst does not state {value:g}"
    for word in ("supported", "contradicted", "inconclusive", "deterministic", "finding"):
        assert word in text
    assert f"{verdicts.SUPPORT_LEVEL:.0%}" in text and f"{verdicts.CONTRADICT_LEVEL:.0%}" in text
