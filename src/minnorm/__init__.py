"""minnorm: gradient descent on wide two-layer ReLU networks versus the linearized min-norm
target."""

# The one source of the version: pyproject.toml reads it, the workflow's Snakefile names the same
# (WORKFLOW_VERSION, checked at parse time), a release is the git tag v<version> (CHANGELOG.md).
__version__ = "0.2.0"
