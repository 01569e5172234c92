"""Build hook of minnorm (the metadata is in pyproject.toml): wheels carry the Snakemake workflow.

The repository keeps the Snakemake workflow catalog's layout at its top level (`Snakefile`,
`workflow/`, `config/`, `profiles/`). A wheel built from it (or from its sdist, which holds the
same files: MANIFEST.in) gets a copy of those files as package data under
`minnorm/snakemake_workflow/`, laid out as in the repository, so that `minnorm run` and a
Snakemake `module` can use the installed workflow without a clone
(`minnorm.workflow.packaged.workflow_root`). Editable installs copy nothing: they use the
clone's own files.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Where the workflow lands inside the package (minnorm.workflow.packaged.BUNDLE_DIR).
BUNDLE_DIR = "minnorm/snakemake_workflow"
# The workflow's files, relative to the repository root (tests/project/test_wheel.py checks that
# the wheel holds each of them).
WORKFLOW_FILES = (
    "Snakefile",
    "workflow/Snakefile",
    "workflow/rules/*.smk",
    "workflow/scripts/*.py",
    "workflow/schemas/*.yaml",
    "workflow/report/*.rst",
    "workflow/envs/*.yaml",
    "config/*.yaml",
    "config/README.md",
    "profiles/*/*.yaml",
    "requirements.lock",
)


class BuildPyWithWorkflow(build_py):
    """`build_py` that also copies WORKFLOW_FILES into the package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for pattern in WORKFLOW_FILES:
            sources = sorted(Path().glob(pattern))
            if not sources:
                raise FileNotFoundError(f"setup.py: no file matches WORKFLOW_FILES entry {pattern}")
            for source in sources:
                target = Path(self.build_lib) / BUNDLE_DIR / source
                self.mkpath(str(target.parent))
                # copy_file reads through symbolic links (workflow/schemas/ holds one).
                self.copy_file(str(source), str(target), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithWorkflow})
