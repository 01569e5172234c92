"""Studies beyond the paper (config/beyond.yaml; README "Beyond the paper").

Each module holds the analysis of one question, as plain functions over a collected Dataset
(minnorm.analysis.collect), and declares its theorem checks as `CHECKS`, a tuple of CheckSpec that
minnorm.analysis.checks.CHECKS includes after the papers' own checks:

- `rates`: how tight is the m^-1/4 rate (local slopes between neighbouring widths), and does the
  step size change the width exponent (gradient descent against gradient flow);
- `lazy`: where the lazy regime ends, as a function of the init scale kappa and the width m;
- `readoffs`: which unstated settings reproduce the values read off Satpathi & Srikant's
  Figure 1;
- `families`: other activations and a trained output layer (issue 29), each family's rate
  against relu's.
"""

from __future__ import annotations

from minnorm.analysis.beyond.families import CHECKS as _FAMILIES
from minnorm.analysis.beyond.lazy import CHECKS as _LAZY
from minnorm.analysis.beyond.rates import CHECKS as _RATES
from minnorm.analysis.beyond.readoffs import CHECKS as _READOFFS
from minnorm.analysis.check_spec import CheckSpec

BEYOND_CHECKS: tuple[CheckSpec, ...] = (*_RATES, *_LAZY, *_READOFFS, *_FAMILIES)
