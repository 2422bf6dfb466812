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

.PHONY: setup test test-fast lint demo demo-full run bench clean

setup: $(STAMP)

# One line per phase, so the quiet pip install (minutes) does not look hung. The sizes are this
# project's measurement (docs/setup-and-demo.md): torch's CUDA build is the only one the pinned
# versions offer on x86_64 Linux, and its NVIDIA libraries are most of the environment.
$(STAMP): requirements.txt requirements-dev.txt
	@if test -x "$(BIN)/python"; then echo "setup 1/3: virtual environment $(VENV) (already there)"; \
	else echo "setup 1/3: virtual environment $(VENV) from $$(command -v $(PYTHON)) ($$($(PYTHON) -V 2>&1))"; \
	$(PYTHON) -m venv "$(VENV)"; fi
	@echo "setup 2/3: pip install -r requirements-dev.txt: torch + torchvision (about 5.3 GB with torch's CUDA" \
	"libraries), onnx, onnxruntime, numpy, pillow, tqdm, and for tests pytest, ruff, shellcheck, matplotlib;" \
	"1 to 3 minutes, about 5.7 GB in all"
	@"$(BIN)/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | $(PIP_QUIET)
	@echo "setup 3/3: import check (torch, torchvision, onnx, onnxruntime, numpy, PIL, tqdm)"
	@"$(BIN)/python" -c "import torch, torchvision, onnx, onnxruntime, numpy, PIL, tqdm"
	@touch "$(STAMP)"
	@echo "setup done: $(VENV) holds $$(du -sh "$(VENV)/" 2>/dev/null | cut -f1); next: make demo," \
	"or source $(VENV)/bin/activate to run the stage scripts"

lint: setup
	"$(BIN)/ruff" check .
	@if compgen -G "scripts/*.sh" > /dev/null; then "$(BIN)/shellcheck" -x scripts/*.sh; fi

test: setup lint
	"$(BIN)/python" -m pytest -q

# Everything but the tests marked slow (see pyproject.toml), for iterating.
test-fast: setup lint
	"$(BIN)/python" -m pytest -q -m "not slow"

# The guide's steps 1-7, small (under a minute after set-up); demo-full adds the slow extras
# (the uint8 path, and step 7's sweep over batch sizes and variants with the int8 model).
demo: setup
	bash scripts/demo.sh

demo-full: setup
	bash scripts/demo.sh --full

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
