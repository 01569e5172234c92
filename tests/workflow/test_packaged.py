"""Where the workflow of this minnorm lives (minnorm.workflow.packaged): the wheel's bundle, else
the clone the package sits in."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO
from minnorm.workflow.packaged import (
    BUNDLE_DIR,
    WorkflowNotFoundError,
    module_snakefile,
    workflow_root,
)


def test_an_editable_install_uses_the_clone():
    assert workflow_root() == REPO
    assert module_snakefile() == str(REPO / "workflow" / "Snakefile")


def test_a_wheel_uses_its_bundle_even_inside_a_clone_layout(tmp_path):
    package = tmp_path / "src" / "minnorm"
    (tmp_path / "workflow").mkdir()
    (tmp_path / "workflow" / "Snakefile").write_text("# clone")
    assert workflow_root(package) == tmp_path
    bundle = package / BUNDLE_DIR
    (bundle / "workflow").mkdir(parents=True)
    (bundle / "workflow" / "Snakefile").write_text("# wheel")
    assert workflow_root(package) == bundle


def test_no_workflow_is_a_clear_error(tmp_path):
    package = tmp_path / "site-packages" / "minnorm"
    package.mkdir(parents=True)
    with pytest.raises(WorkflowNotFoundError, match="reinstall minnorm"):
        workflow_root(package)
    # A Snakefile next to a non-src folder is not this package's clone.
    (tmp_path / "workflow").mkdir()
    (tmp_path / "workflow" / "Snakefile").write_text("# someone else's")
    with pytest.raises(WorkflowNotFoundError):
        workflow_root(Path(package))
