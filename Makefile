# `make run` and `make test` each set up .venv from pyproject.toml first.
#
# Two stacks: the default one a new user gets (Python >= 3.12, the newest jax, flax, orbax
# and grain the registries serve) in .venv, and the floor pyproject.toml declares
# (Python 3.11, constraints/min.txt, plus PyTorch for the encoder parity tests) in
# .venv-min. `make ci` runs both, as .ci/run does.

# The first Python >= 3.12 found (jax 0.11 and later need it); PY=... picks another.
PY ?= $(shell for p in python3.12 python3.13 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 \
    $(HOME)/.pyenv/versions/3.13*/bin/python3.13; do \
  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; \
  done)
PY_MIN ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MIN := .venv-min
WORKDIR ?= runs/digits
ARGS ?=
# Two pytest workers: the suite is compile-bound and XLA compiles on one core.
WORKERS ?= 2

AOT := .venv-aot

.PHONY: run fashion test test-slow test-min ci lint setup aot-setup min-setup bench clean python

python:
	@test -n "$(PY)" || { echo "error: no Python >= 3.12 found (jax >= 0.11 needs it): install \
	one, or run make with PY=/path/to/python3.12" >&2; exit 2; }

$(BIN)/activate: pyproject.toml | python
	$(PY) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/activate

setup: $(BIN)/activate

# XLA's TPU/GPU compilers for scripts/plan.py and tests/aot (no chip needed).
$(AOT)/bin/activate: pyproject.toml | python
	$(PY) -m venv --clear $(AOT)
	$(AOT)/bin/pip install --quiet --upgrade pip
	$(AOT)/bin/pip install --quiet -e '.[aot]'
	touch $(AOT)/bin/activate

aot-setup: $(AOT)/bin/activate

# The declared floor: Python 3.11 and constraints/min.txt, with the PyTorch parity references.
$(MIN)/bin/activate: pyproject.toml constraints/min.txt
	$(PY_MIN) -m venv --clear $(MIN)
	$(MIN)/bin/pip install --quiet --upgrade pip
	$(MIN)/bin/pip install --quiet -c constraints/min.txt -e '.[test,parity]'
	touch $(MIN)/bin/activate

min-setup: $(MIN)/bin/activate

# Three arms side by side (vanilla, greedy, threshold), then $(WORKDIR)/compare.md.
run: setup
	$(BIN)/python scripts/arms.py --config configs/digits.py --arms vanilla,greedy,threshold \
	    --workdir $(WORKDIR) $(ARGS)

# The second real dataset: Fashion-MNIST from Debian's dataset-fashion-mnist (IDX files under
# /usr/share/datasets/fashion-mnist), vanilla at 16x16, ~45 min on a 2-core CPU, then its verdict
# in runs/fashion/compare/compare.md.
FASHION_DIR ?= /usr/share/datasets/fashion-mnist
fashion: setup
	@test -d $(FASHION_DIR) || { echo "error: no Fashion-MNIST at $(FASHION_DIR): install it \
	with 'sudo apt-get install dataset-fashion-mnist', or run make fashion FASHION_DIR=<a \
	directory of its IDX files>" >&2; exit 2; }
	$(BIN)/python scripts/recursive.py --config configs/fashion_mnist.py \
	    --workdir runs/fashion --config.data.path=$(FASHION_DIR) $(ARGS)
	$(BIN)/python scripts/compare.py runs/fashion --out runs/fashion/compare

# Every module's tests, the slow end-to-end ones left to `make test-slow` (and CI).
test: setup aot-setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(WORKERS) --durations=10 -m 'not slow' tests --ignore=tests/aot
	$(AOT)/bin/python -m pytest -q -n $(WORKERS) --durations=10 --dist loadgroup -m 'not slow' \
	    tests/aot

test-slow: setup aot-setup
	$(BIN)/python -m pytest -q -n $(WORKERS) --durations=10 -m slow tests --ignore=tests/aot
	$(AOT)/bin/python -m pytest -q -n $(WORKERS) --durations=10 --dist loadgroup -m slow tests/aot

# Every module's tests on the floor stack, with the PyTorch parity tests it alone can run.
test-min: min-setup
	$(MIN)/bin/python -m pytest -q -n $(WORKERS) --durations=10 -m 'not slow' tests --ignore=tests/aot

ci: test test-slow test-min

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks need PyTorch/diffusers/faiss: a separate env, never the package's deps, on
# Python 3.11 (the local PyTorch CPU wheel's); the scripts call it for the references.
.venv-bench/bin/activate:
	$(PY_MIN) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet torch==2.13.0 diffusers transformers faiss-cpu scikit-learn scipy
	touch .venv-bench/bin/activate

# DDPM steps the sampling benchmarks time (images/s at 1000 steps is projected from them):
# 1000 on an accelerator, fewer on a CPU, where one step of batch 64 takes ~1 s.
SAMPLE_STEPS ?= 20
DTYPE ?= float32

bench: setup .venv-bench/bin/activate
	$(BIN)/python benchmarks/entropy_kernel.py
	$(BIN)/python benchmarks/selection.py
	$(BIN)/python benchmarks/train_step.py --dtype $(DTYPE)
	$(BIN)/python benchmarks/sampling.py --dtype $(DTYPE) --steps $(SAMPLE_STEPS)
	$(BIN)/python benchmarks/dinov2.py
	$(BIN)/python benchmarks/generation.py --dtype $(DTYPE) --sample-steps $(SAMPLE_STEPS)

clean:
	rm -rf runs
