"""The checks and estimates tables as files: CSV, markdown and HTML renderings, reading them
back, and the summary over every experiment under results/.

A table's header line states how many claims it holds and how each is decided
(minnorm.analysis.verdicts), so a reader can weigh the verdicts: each claim is tested at 5% on
its own, with no family-wise correction.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from minnorm.analysis.check_spec import CLAIM, COLUMNS, ESTIMATE_COLUMNS
from minnorm.analysis.verdicts import (
    CONTRADICT_LEVEL,
    CONTRADICTED,
    FAIL,
    INCONCLUSIVE,
    NO_VERDICT,
    NOT_APPLICABLE,
    PASS,
    SUPPORT_LEVEL,
    SUPPORTED,
)

# Background of each verdict's cell in the HTML table (light, readable in print and for the
# colour-blind thanks to the verdict text itself).
VERDICT_COLORS = {
    PASS: "#d5f5dd",
    SUPPORTED: "#d5f5dd",
    FAIL: "#fbd3d0",
    CONTRADICTED: "#fbd3d0",
    INCONCLUSIVE: "#fff2c2",
    NO_VERDICT: "#e3ecf7",
    NOT_APPLICABLE: "#eeeeee",
}
# Scoped to the table's class, so including the table in a report caption styles nothing else.
_STYLE = (
    "<style>table.minnorm-checks th, table.minnorm-checks td "
    "{padding: 2px 6px; text-align: left; vertical-align: top}</style>"
)


def legend(df: pd.DataFrame) -> str:
    """One line: the number of rows of each kind and how the claims are decided."""
    if "kind" not in df.columns:
        return ""
    kinds = df["kind"].value_counts()
    claims = int(kinds.get(CLAIM, 0))
    return (
        f"{len(df)} rows: {int(kinds.get('deterministic', 0))} deterministic (pass/fail), "
        f"{claims} claims (supported if the {SUPPORT_LEVEL:.0%} CI lies inside the claim's "
        f"region, contradicted if the {CONTRADICT_LEVEL:.0%} CI lies outside it, else "
        f"inconclusive; each claim tested at 5% on its own, {claims} tests, no family-wise "
        f"correction), {int(kinds.get('finding', 0))} findings (estimate and 95% CI, no "
        "verdict)."
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        text = "n/a" if np.isnan(value) else f"{value:.4g}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def checks_markdown(df: pd.DataFrame) -> str:
    """The table as a GitHub-flavoured markdown table (pipes in cells escaped), after its
    legend line when it has a `kind` column."""
    head = legend(df)
    lines = [head, ""] if head else []
    lines += ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def checks_html(df: pd.DataFrame) -> str:
    """The table as an HTML <table> fragment (numbers as in the markdown, verdicts coloured),
    after its legend.

    Included verbatim in the Snakemake report's captions, so the verdicts are on the page.
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for column, value in zip(df.columns, row, strict=True):
            text = html.escape(_cell(value).replace("\\|", "|"))
            style = ""
            if column == "verdict":  # dark text: the report's side panel inverts text colours
                style = (
                    f' style="background:{VERDICT_COLORS.get(value, "#ffffff")};'
                    'color:#111111;font-weight:bold"'
                )
            cells.append(f"<td{style}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = legend(df)
    return (
        _STYLE
        + (f"\n<p>{html.escape(note)}</p>" if note else "")
        + '\n<table class="minnorm-checks" border="1" style="border-collapse:collapse">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
    )


def checks_text(df: pd.DataFrame) -> tuple[str, str, str]:
    """(CSV, markdown, HTML) of a checks table; all rendered before any is written."""
    return df.to_csv(index=False), checks_markdown(df), checks_html(df)


def _read_csv(path: str | Path, columns: list[str], numbers: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"table {str(path)!r} cannot be read: {error}") from error
    if list(df.columns) != columns:
        raise ValueError(f"table {str(path)!r} has columns {list(df.columns)}, expected {columns}")
    for name in numbers:
        df[name] = pd.to_numeric(df[name].replace("", np.nan))
    return df


def read_checks_csv(path: str | Path) -> pd.DataFrame:
    """A checks CSV written by `write_checks` (strings kept as written: "n/a" stays text).

    Raises ValueError naming the file when its columns are not `COLUMNS`.
    """
    return _read_csv(path, COLUMNS, ("measured", "ci_low", "ci_high"))


def read_estimates_csv(path: str | Path) -> pd.DataFrame:
    """An estimates CSV (`ESTIMATE_COLUMNS`); ValueError naming the file otherwise."""
    return _read_csv(path, ESTIMATE_COLUMNS, ("estimate", "ci_low", "ci_high"))


def write_checks(
    df: pd.DataFrame,
    out_csv: str | Path,
    out_md: str | Path,
    out_html: str | Path,
    estimates: pd.DataFrame | None = None,
    out_estimates: str | Path | None = None,
) -> None:
    """Write a checks table as CSV, markdown and HTML (and its estimates table as CSV), each
    atomically; everything is rendered before anything is written."""
    from minnorm.io.files import write_text_atomic

    texts = list(zip(checks_text(df), (out_csv, out_md, out_html), strict=True))
    if estimates is not None and out_estimates is not None:
        texts.append((estimates.to_csv(index=False), out_estimates))
    for text, out in texts:
        write_text_atomic(text, out)


def _summary(
    results: str | Path,
    name: str,
    first: Sequence[str],
    read: Callable[[Path], pd.DataFrame],
    columns: list[str],
) -> pd.DataFrame:
    files = {path.parent.name: path for path in sorted(Path(results).glob(f"*/{name}"))}
    order = [exp for exp in first if exp in files] + [exp for exp in files if exp not in first]
    frames = [read(files[exp]) for exp in order]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def summary_checks(results: str | Path, first: Sequence[str] = ()) -> pd.DataFrame:
    """Every experiment's checks found as `results/<exp>/checks.csv`, one table.

    Experiments named in `first` (the current config's, in config order) come first, then every
    other experiment with a checks file, by name: running one config never drops another's rows.
    """
    return _summary(results, "checks.csv", first, read_checks_csv, COLUMNS)


def summary_estimates(results: str | Path, first: Sequence[str] = ()) -> pd.DataFrame:
    """Every `results/<exp>/estimates.csv`, one table, ordered as `summary_checks`."""
    return _summary(results, "estimates.csv", first, read_estimates_csv, ESTIMATE_COLUMNS)
