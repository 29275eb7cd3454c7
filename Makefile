# Two entry points for a fresh clone (Python 3.10+ and pip, nothing else installed):
#   make demo   set up .venv and run the whole pipeline on the embedded demo data
#   make test   set up .venv and run the test suite
#   make lint   set up .venv and run the linter and the formatter's check (ruff, configured in pyproject.toml)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Installed before the package so that its loose `torch>=2.4` requirement is already met.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo_output

.PHONY: setup demo lint test bench

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/maskvision demo --output-dir $(DEMO_DIR)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest tests

bench: setup
	$(BIN)/python benchmarks/run.py
