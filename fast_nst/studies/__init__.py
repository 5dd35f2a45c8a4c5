"""Studies and reports: classic experiments, ground-truth comparison, flicker,
calibration, contact sheets."""
