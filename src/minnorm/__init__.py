"""minnorm: gradient descent on wide two-layer ReLU networks versus the linearized min-norm
target.

`from minnorm import fit_power_law` gives the power-law fit with intervals over seeds and data
draws (minnorm.analysis.powerlaw); it is imported on first use, so `import minnorm` stays cheap.
"""

from __future__ import annotations

from typing import Any

# The one source of the version: pyproject.toml reads it, the workflow's Snakefile names the same
# (WORKFLOW_VERSION, checked at parse time), a release is the git tag v<version> (CHANGELOG.md).
__version__ = "0.2.0"

# Public names -> the module that defines them, imported on first access.
_LAZY = {"fit_power_law": "minnorm.analysis.powerlaw", "PowerLawFit": "minnorm.analysis.powerlaw"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from minnorm.io.resolve import resolve

        return resolve(f"{_LAZY[name]}:{name}")
    raise AttributeError(f"module 'minnorm' has no attribute {name!r}")


__all__ = ["PowerLawFit", "__version__", "fit_power_law"]
