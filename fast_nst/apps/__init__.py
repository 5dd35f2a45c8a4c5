"""Command-line entry points, one module per command, each installed as a console script
(`fast-nst-train`, `fast-nst-stylize`, `fast-nst-gatys`, `fast-nst-experiments`,
`fast-nst-compare`, `fast-nst-calibrate`, `fast-nst-flicker`, `fast-nst-demo`,
`fast-nst-serve`). They parse, build and call; the work is in the layer packages. The top-level
train.py and stylize.py call the first two."""
