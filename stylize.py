"""Stylize images with a trained network (stub until the stylize issue lands)."""
