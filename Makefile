# `make run` and `make test` each set up .venv from pyproject.toml first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKDIR ?= runs/digits
ARGS ?=

.PHONY: run test lint setup bench clean

$(BIN)/activate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/activate

setup: $(BIN)/activate

run: setup
	$(BIN)/python scripts/recursive.py --config configs/digits.py --workdir $(WORKDIR)/vanilla $(ARGS)
	$(BIN)/python scripts/recursive.py --config configs/digits.py:greedy --workdir $(WORKDIR)/greedy $(ARGS)
	$(BIN)/python scripts/compare.py $(WORKDIR)/vanilla $(WORKDIR)/greedy --out $(WORKDIR)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks need PyTorch/diffusers/faiss: a separate env, never the package's deps.
.venv-bench/bin/activate:
	$(PY) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet torch==2.13.0 diffusers transformers faiss-cpu scikit-learn scipy
	touch .venv-bench/bin/activate

bench: setup .venv-bench/bin/activate
	$(BIN)/python benchmarks/entropy_kernel.py
	$(BIN)/python benchmarks/selection.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/dinov2.py

clean:
	rm -rf runs
