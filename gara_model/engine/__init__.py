"""Training and evaluation: losses, batches, the train loop and evaluate()."""
