# `make run` and `make test` each set up .venv from pyproject.toml first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKDIR ?= runs/digits
ARGS ?=

AOT := .venv-aot

.PHONY: run test lint setup aot-setup bench clean

$(BIN)/activate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/activate

setup: $(BIN)/activate

# XLA's TPU/GPU compilers for scripts/plan.py and tests/aot (no chip needed).
$(AOT)/bin/activate: pyproject.toml
	$(PY) -m venv $(AOT)
	$(AOT)/bin/pip install --quiet --upgrade pip
	$(AOT)/bin/pip install --quiet -e '.[aot]'
	touch $(AOT)/bin/activate

aot-setup: $(AOT)/bin/activate

# Three arms side by side (vanilla, greedy, threshold), then $(WORKDIR)/compare.md.
run: setup
	$(BIN)/python scripts/arms.py --config configs/digits.py --arms vanilla,greedy,threshold \
	    --workdir $(WORKDIR) $(ARGS)

test: setup aot-setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests --ignore=tests/aot
	$(AOT)/bin/python -m pytest -q tests/aot

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks need PyTorch/diffusers/faiss: a separate env, never the package's deps.
.venv-bench/bin/activate:
	$(PY) -m venv .venv-bench
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
