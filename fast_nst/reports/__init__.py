"""What runs leave for people to read: Markdown and CSV tables, image grids and contact sheets,
the optimizer's per-step record, the comparison and calibration reports."""
