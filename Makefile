# fast_nst developer commands. `make test` alone sets everything up.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed

.PHONY: install test lint bench bench-runtimes tensorboard train demo experiments compare calibrate serve clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -c constraints.txt -e '.[dev,web]'
	touch $(STAMP)

test: install
	$(PYTHON) -m pytest -q

lint: install
	$(BIN)/ruff check fast_nst tests benchmarks train.py stylize.py

bench: bench-gatys bench-train bench-stylize bench-runtimes

bench-gatys: install
	$(PYTHON) benchmarks/bench_gatys.py

bench-train: install
	$(PYTHON) benchmarks/bench_train.py

bench-stylize: install
	$(PYTHON) benchmarks/bench_stylize.py

# every CPU runtime (eager, AOT-compiled, ONNX Runtime fp32 and int8) for one network
bench-runtimes: install
	$(PYTHON) benchmarks/bench_runtimes.py

experiments: install
	$(BIN)/fast-nst-experiments

demo: install
	$(BIN)/fast-nst-demo --output demo

# The web page on http://127.0.0.1:7860 (docs/web.md); e.g. SERVE_ARGS='--port 8000'
SERVE_ARGS ?=

serve: install
	$(BIN)/fast-nst-serve $(SERVE_ARGS)

# The full protocol (every bundled model, 6 photos, 256 and 512 px, 300 L-BFGS iterations from
# content and noise init) takes hours on a CPU; narrow it with e.g. COMPARE_ARGS='sizes=[256]'.
COMPARE_ARGS ?=

compare: install
	$(BIN)/fast-nst-compare $(COMPARE_ARGS)

# Choose a style weight before training (minutes on a CPU; docs/calibrate.md), e.g.
# make calibrate CALIBRATE_ARGS='style=painting.jpg'
CALIBRATE_ARGS ?=

calibrate: install
	$(BIN)/fast-nst-calibrate $(CALIBRATE_ARGS)

TRAIN_ARGS ?= experiment=local

train: install
	$(PYTHON) train.py $(TRAIN_ARGS)

tensorboard: install
	$(BIN)/tensorboard --logdir outputs --bind_all

clean:
	rm -rf $(VENV) outputs multirun demo .pytest_cache
