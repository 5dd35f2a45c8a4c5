"""Command-line entry points (console scripts `fast-nst-train`, `fast-nst-stylize`); the
top-level train.py and stylize.py call these."""
