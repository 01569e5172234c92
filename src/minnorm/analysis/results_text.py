"""The results text of README and docs filled in from the checks and estimates tables, so that
no number or verdict word in them is typed by hand.

Templates (docs/templates/*.md) hold placeholders `{{ key }}` or `{{ key:format }}`:

- `{{ exp.check.field }}` or `{{ exp.check[setting].field }}` (setting as in the table's
  `setting` column) read the checks table: fields `estimate` (alias `measured`), `ci_low`,
  `ci_high`, `ci` ("[low, high]" in the given format), `verdict`, `kind`, `detail`, `note`
  (the detail's last clause), `draws` and `seeds`
  (from the row's detail: "3 data draws x 2 seeds"), `half` (half the 95% interval's width) and
  `needed` (the widest 90% interval that could still support the claim, from its region);
- `{{ exp.check[setting]@draw.field }}` reads a draw's row of the estimates table;
- `{{ count.kind.verdict }}` counts rows of a kind with a verdict ("count.claim.supported").

A page or block whose template needs an experiment the tables lack (the beyond studies before
`make beyond`) is left as it is when writing, and counts as stale when checking.

`render` fills a template; `targets` lists what is generated (docs/results.md, docs/beyond.md,
docs/families.md and the README blocks between `<!-- name:begin -->` and `<!-- name:end -->`).
`python -m minnorm.analysis.results_text` rewrites them from docs/checks.csv and
docs/estimates.csv (the committed run's tables); with `--check` it only reports what differs
(exit status 1). tests/analysis/test_results_text.py fails when a committed document differs
from its tables.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from minnorm.analysis.check_tables import read_checks_csv, read_estimates_csv
from minnorm.analysis.verdicts import Region, width_needed

PLACEHOLDER = re.compile(r"\{\{\s*([^{}:]+?)\s*(?::\s*([^{}]+?))?\s*\}\}")
KEY = re.compile(
    r"^(?P<exp>[A-Za-z0-9_]+)\.(?P<check>[a-z0-9_]+)(?:\[(?P<setting>[^\]]*)\])?"
    r"(?:@(?P<draw>[^.]+))?\.(?P<field>[a-z_]+)$"
)
DRAWS = re.compile(r"(\d+) data draws? x (\d+) seeds")
REGION = re.compile(r"region (?:(-?[\d.]+) <= )?\w+ (<=|>=) (-?[\d.]+)")


class TemplateError(ValueError):
    """A placeholder that names no row or field of the tables."""


class MissingExperiment(TemplateError):
    """A placeholder names an experiment of which the tables hold no row (its run is missing,
    e.g. `make beyond` not run yet)."""


@dataclass(frozen=True)
class Tables:
    """The committed run's checks and estimates tables."""

    checks: pd.DataFrame
    estimates: pd.DataFrame

    @classmethod
    def read(cls, folder: Path) -> Tables:
        return cls(
            read_checks_csv(folder / "checks.csv"), read_estimates_csv(folder / "estimates.csv")
        )


def _region(criterion: str) -> Region | None:
    """The region of a claim from its criterion text ("region -0.300 <= exponent <= -0.200")."""
    match = REGION.search(criterion)
    if match is None:
        return None
    low, op, high = match.groups()
    if low is not None:
        return Region(float(low), float(high))
    return Region(high=float(high)) if op == "<=" else Region(low=float(high))


def _row(tables: Tables, key: str, match: re.Match) -> pd.Series:
    table = tables.estimates if match["draw"] else tables.checks
    if not (tables.checks.experiment == match["exp"]).any():
        raise MissingExperiment(f"{{{{ {key} }}}}: the tables hold no row of {match['exp']!r}")
    rows = table[(table.experiment == match["exp"]) & (table.check == match["check"])]
    if match["setting"] is not None:
        rows = rows[rows.setting == match["setting"]]
    if match["draw"]:
        rows = rows[rows.draw.astype(str) == match["draw"]]
    if len(rows) != 1:
        settings = sorted(set(table[table.check == match["check"]].setting.astype(str)))
        raise TemplateError(
            f"{{{{ {key} }}}} matches {len(rows)} rows (settings of that check: {settings})"
        )
    return rows.iloc[0]


def _format(value: object, fmt: str | None) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return "n/a"
    return format(value, fmt or ".3f")


def value(tables: Tables, key: str, fmt: str | None = None) -> str:
    """The text of one placeholder key."""
    if key.startswith("count."):
        _, kind, verdict = key.split(".", 2)
        rows = tables.checks[(tables.checks.kind == kind) & (tables.checks.verdict == verdict)]
        return str(len(rows))
    match = KEY.match(key)
    if match is None:
        raise TemplateError(f"{{{{ {key} }}}} is not of the form exp.check[setting].field")
    row = _row(tables, key, match)
    field = match["field"]
    estimate = row["estimate"] if match["draw"] else row["measured"]
    if field in ("estimate", "measured"):
        return _format(estimate, fmt)
    if field in ("ci_low", "ci_high"):
        return _format(row[field], fmt)
    if field == "ci":
        return f"[{_format(row.ci_low, fmt)}, {_format(row.ci_high, fmt)}]"
    if field == "half":
        return _format((row.ci_high - row.ci_low) / 2, fmt)
    if field in ("verdict", "kind", "detail", "setting"):
        return str(row[field])
    if field == "note":
        return str(row.get("detail", "")).split("; ")[-1]
    if field in ("draws", "seeds"):
        found = DRAWS.search(str(row.get("detail", row.get("basis", ""))))
        if found is None:
            raise TemplateError(f"{{{{ {key} }}}}: the row states no 'N data draws x M seeds'")
        return found.group(1 if field == "draws" else 2)
    if field == "needed":
        region = _region(str(row.criterion))
        if region is None:
            raise TemplateError(f"{{{{ {key} }}}}: the row is not a claim with a region")
        return _format(width_needed(region, float(estimate)), fmt)
    raise TemplateError(f"{{{{ {key} }}}}: unknown field {field!r}")


def render(template: str, tables: Tables) -> str:
    """The template with every placeholder filled in; TemplateError names a bad one."""
    return PLACEHOLDER.sub(lambda m: value(tables, m.group(1), m.group(2)), template)


# ---- what is generated: whole pages and README blocks ----

DOCS = Path("docs")
TEMPLATES = DOCS / "templates"
PAGES = {"results.md": "results.md", "beyond.md": "beyond.md", "families.md": "families.md"}
README_BLOCKS = {
    "results": "readme_results.md",
    "beyond": "readme_beyond.md",
    "families": "readme_families.md",
}
GENERATED_NOTE = (
    "<!-- Generated by `python -m minnorm.analysis.results_text` from docs/checks.csv and "
    "docs/estimates.csv (template: docs/templates/{name}); edit the template, not this text. -->"
)


def _block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- {name}:begin -->\n)(.*?)(<!-- {name}:end -->)", re.S)


def targets(root: Path, tables: Tables, skipped: list[str] | None = None) -> dict[Path, str]:
    """Every generated file with the text it must hold. With a `skipped` list, a page or README
    block whose template needs an experiment the tables lack is left as it is and named in the
    list (MissingExperiment otherwise)."""

    def fill(template: str) -> str | None:
        try:
            return render((root / TEMPLATES / template).read_text(encoding="utf-8"), tables)
        except MissingExperiment as exc:
            if skipped is None:
                raise
            skipped.append(f"{template}: {exc}")
            return None

    out = {}
    for page, template in PAGES.items():
        text = fill(template)
        if text is not None:
            out[root / DOCS / page] = GENERATED_NOTE.format(name=template) + "\n\n" + text
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    for name, template in README_BLOCKS.items():
        pattern = _block(name)
        if not pattern.search(text):
            raise TemplateError(f"README.md has no <!-- {name}:begin --> ... end block")
        body = fill(template)
        if body is None:
            continue

        def put(m: re.Match, body: str = body) -> str:
            return m.group(1) + body + m.group(3)

        text = pattern.sub(put, text)
    out[readme] = text
    return out


def stale(root: Path) -> list[Path]:
    """The generated files whose committed text differs from their tables (MissingExperiment
    when the tables lack an experiment a template needs)."""
    wanted = targets(root, Tables.read(root / DOCS))
    return [p for p, text in wanted.items() if not p.exists() or p.read_text("utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        differ = stale(args.root)
        for path in differ:
            print(f"{path}: differs from docs/checks.csv and docs/estimates.csv")
        return 1 if differ else 0
    from minnorm.io.files import write_text_atomic

    skipped: list[str] = []
    for path, text in targets(args.root, Tables.read(args.root / DOCS), skipped).items():
        write_text_atomic(text, path)
        print(f"wrote {path}")
    for line in skipped:
        print(f"left unchanged: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
