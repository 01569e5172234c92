"""Gradient descent: the step, the LightningModule, the training loop, run records, resources."""
