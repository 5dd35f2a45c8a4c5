"""Applying a trained network: model files, runtime, tiling, video, export."""
