"""compliance-checker's `cf:1.11` suite on one file (shared by the CF and wheel tests)."""

from __future__ import annotations

from pathlib import Path

from compliance_checker.runner import CheckSuite


def cf_problems(path: Path) -> list[str]:
    """The errors and warnings of compliance-checker's `cf:1.11` suite on a file (its "normal"
    criteria: high and medium priority)."""
    suite = CheckSuite()
    suite.load_all_available_checkers()
    dataset = suite.load_dataset(str(path))
    results, errors = suite.run_all(dataset, ["cf:1.11"], skip_checks=[])["cf:1.11"]
    assert not errors, errors  # a check that crashed is no pass
    return [
        f"{result.name}: {message}"
        for result in results
        if result.weight >= 2 and result.value[0] < result.value[1]
        for message in result.msgs
    ]
