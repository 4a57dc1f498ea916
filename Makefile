# Two entry points: `make run` (the whole workflow, config/config.yaml) and `make test`.
# Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup run test bench-gpu clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores all

test: $(STAMP)
	$(BIN)/python -m pytest -q

# What a GPU decides, in about 5 minutes: the paper bench suite, the plan of config/paper.yaml, bf16's effect on
# SNASNet's ranks and on training accuracy (docs/bench.md). DEVICE=cuda:1 picks another GPU.
bench-gpu: $(STAMP)
	PYTHON=$(BIN)/python scripts/gpu-check.sh results/gpu-check $(or $(DEVICE),cuda)

clean:
	rm -rf results .pytest_cache
