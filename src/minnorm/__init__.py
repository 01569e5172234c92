"""minnorm: gradient descent on wide two-layer ReLU networks versus the linearized min-norm
target."""

__version__ = "0.1.0"
