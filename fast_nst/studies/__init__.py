"""Studies: the classic optimizer experiments, the networks against the optimizer (compare),
flicker, and the demo."""
