"""Training the feed-forward network: the network, data, the Lightning module, resume."""
