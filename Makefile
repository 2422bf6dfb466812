# One-command set-up, test, demo and benchmarks. Everything runs from ./.venv, made here.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# This machine's pip config lists index folders that do not all exist; its warnings about them
# are noise, everything else pip says is kept; grep's own "nothing left" status must not hide
# pip's, hence the braces.
PIP_QUIET := { grep -v -e "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup test test-fast lint demo run bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x "$(BIN)/python" || $(PYTHON) -m venv "$(VENV)"
	"$(BIN)/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | $(PIP_QUIET)
	"$(BIN)/python" -c "import torch, torchvision, onnx, onnxruntime, numpy, PIL, tqdm"
	@touch "$(STAMP)"

lint: setup
	"$(BIN)/ruff" check .
	@if compgen -G "scripts/*.sh" > /dev/null; then "$(BIN)/shellcheck" -x scripts/*.sh; fi

test: setup lint
	"$(BIN)/python" -m pytest -q

# Everything but the tests marked slow (see pyproject.toml), for iterating.
test-fast: setup lint
	"$(BIN)/python" -m pytest -q -m "not slow"

demo: setup
	bash scripts/demo.sh

# Steps 1-6 (and 7) from a checkpoint to the guide's tables:
#   make run CKPT=model_lincls_best.pth.tar VAL_DIR=/data/imagenet/val LABELS=val_label.txt
run: setup
	bash scripts/run_all.sh

# Every benchmark runs, even after one misses its target or fails; one table at the end, and a
# non-zero exit only then (benchmarks/run_all.py).
bench: setup
	"$(BIN)/python" benchmarks/run_all.py

clean:
	rm -rf work .pytest_cache .ruff_cache
