"""Stub: to be written."""

from minnorm.check_spec import CheckSpec

CHECKS: tuple[CheckSpec, ...] = ()
