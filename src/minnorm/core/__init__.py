"""Pure math: seeding, the network, kernels, the min-norm target, theory numbers (no I/O)."""
