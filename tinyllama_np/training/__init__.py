"""Training: token files and batches, the optimizers, and the loop with exact resume."""
