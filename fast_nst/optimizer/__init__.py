"""The optimizer path (Gatys et al.): image optimization under the perceptual loss.

config (GatysConfig, checks, defaults) -> inputs (images) and loss (the objective) -> loop
(optimize, run) -> record (files of a run) and clip (video); the app is fast_nst.apps.gatys."""
