"""The results text of README and docs follows the tables: templates filled from the committed
run's checks and estimates tables must equal the committed documents, and a changed number or
verdict in the tables changes the text."""

import shutil

import pandas as pd
import pytest

from helpers import REPO
from minnorm.analysis import results_text
from minnorm.analysis.check_spec import COLUMNS, ESTIMATE_COLUMNS
from minnorm.analysis.results_text import Tables, TemplateError, render, stale


def test_committed_documents_equal_their_tables():
    """README's generated blocks, docs/results.md and docs/beyond.md are what their templates
    give from docs/checks.csv and docs/estimates.csv (run `make docs-figures` after a run, or
    `python -m minnorm.analysis.results_text`, and commit)."""
    assert stale(REPO) == []


def _tables() -> Tables:
    checks = pd.DataFrame(
        [
            [
                "w",
                "claim",
                "dist_to_target",
                "",
                "c",
                -0.3123,
                -0.36,
                -0.27,
                "region exponent <= -0.200; supported if ...",
                "supported",
                "-0.312 ...; widths 128-16384 (8), 3 data draws x 2 seeds, lr 0.02",
            ],
            [
                "w",
                "claim",
                "upper_exponent_quarter",
                "lr=0.02",
                "c",
                -0.27,
                -0.4,
                -0.1,
                "region -0.300 <= exponent <= -0.200; supported if ...",
                "inconclusive",
                "d; 6 data draws x 2 seeds",
            ],
        ],
        columns=COLUMNS,
    )
    estimates = pd.DataFrame(
        [["w", "dist_to_target", "", "1", "q", -0.33, -0.4, -0.25, "", "b"]],
        columns=ESTIMATE_COLUMNS,
    )
    return Tables(checks, estimates)


def test_placeholders_read_rows_fields_and_formats():
    text = render(
        "{{ w.dist_to_target.estimate }} {{ w.dist_to_target.ci:.2f }} is "
        "{{w.dist_to_target.verdict}} ({{ w.dist_to_target.draws }} draws x "
        "{{ w.dist_to_target.seeds }} seeds); upper {{ w.upper_exponent_quarter[lr=0.02].verdict }}"
        ", room {{ w.upper_exponent_quarter[lr=0.02].needed:.2f }}, half "
        "{{ w.upper_exponent_quarter[lr=0.02].half:.2f }}; draw 1 "
        "{{ w.dist_to_target@1.estimate:.2f }}; {{ count.claim.supported }} supported",
        _tables(),
    )
    assert text == (
        "-0.312 [-0.36, -0.27] is supported (3 draws x 2 seeds); upper inconclusive, room 0.06, "
        "half 0.15; draw 1 -0.33; 1 supported"
    )


def test_a_changed_number_or_verdict_changes_the_text():
    tables = _tables()
    before = render("{{ w.dist_to_target.estimate }} {{ w.dist_to_target.verdict }}", tables)
    tables.checks.loc[0, "measured"] = -0.2
    tables.checks.loc[0, "verdict"] = "inconclusive"
    after = render("{{ w.dist_to_target.estimate }} {{ w.dist_to_target.verdict }}", tables)
    assert before == "-0.312 supported" and after == "-0.200 inconclusive"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ w.nothing.estimate }}", "matches 0 rows"),
        ("{{ w.upper_exponent_quarter.estimate }}", "matches 1 rows|settings"),
        ("{{ w.dist_to_target.colour }}", "unknown field 'colour'"),
        ("{{ not a key }}", "not of the form"),
    ],
)
def test_a_bad_placeholder_is_named(template, message):
    tables = _tables()
    if "upper_exponent_quarter.estimate" in template:
        tables.checks.loc[1, "setting"] = "lr=0.02"
        template = "{{ w.upper_exponent_quarter[lr=0.04].estimate }}"
        message = "matches 0 rows.*'lr=0.02'"
    with pytest.raises(TemplateError, match=message):
        render(template, tables)


def test_stale_finds_a_hand_edited_document(tmp_path):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copytree(REPO / "docs" / "templates", root / "docs" / "templates")
    for name in ("checks.csv", "estimates.csv"):
        shutil.copy(REPO / "docs" / name, root / "docs" / name)
    shutil.copy(REPO / "README.md", root / "README.md")
    assert results_text.main(["--root", str(root)]) == 0
    assert stale(root) == []
    page = root / "docs" / "results.md"
    page.write_text(page.read_text().replace("supported", "passed", 1))
    assert stale(root) == [page]
    assert results_text.main(["--root", str(root), "--check"]) == 1


def test_a_missing_experiment_leaves_its_page_unchanged_when_writing(tmp_path):
    """After `make run` alone the beyond studies have no rows: docs-figures writes the default
    run's text and leaves the beyond page and block as they are; checking calls that stale."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copytree(REPO / "docs" / "templates", root / "docs" / "templates")
    checks = results_text.read_checks_csv(REPO / "docs" / "checks.csv")
    estimates = results_text.read_estimates_csv(REPO / "docs" / "estimates.csv")
    default = ("ss_fig1", "width_scaling", "arora_fig2")
    checks[checks.experiment.isin(default)].to_csv(root / "docs" / "checks.csv", index=False)
    estimates[estimates.experiment.isin(default)].to_csv(
        root / "docs" / "estimates.csv", index=False
    )
    shutil.copy(REPO / "README.md", root / "README.md")
    (root / "docs" / "beyond.md").write_text("old beyond page\n")
    assert results_text.main(["--root", str(root)]) == 0
    assert (root / "docs" / "beyond.md").read_text() == "old beyond page\n"
    assert "| width_scaling |" in (root / "docs" / "results.md").read_text()
    with pytest.raises(results_text.MissingExperiment, match="rate_tightness"):
        stale(root)
