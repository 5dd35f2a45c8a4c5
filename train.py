"""Train a feed-forward style network (stub until the training issue lands)."""
