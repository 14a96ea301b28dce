# The README's commands. Each target runs the idempotent setup first.
BIN := .venv/bin

.PHONY: setup reproduce reproduce-quick test test-slow test-all sync lab bench
setup:
	@bash scripts/setup.sh

## Build the default dataset and execute the report notebooks with full parameters.
reproduce: setup
	$(BIN)/music-vae reproduce

## The same end to end with quick parameters (writes reports/quick/, never figures/).
reproduce-quick: setup
	$(BIN)/music-vae reproduce --quick

## Notebooks and library in sync and clean, then the fast tests: unit tests, every library chapter through
## nbdev's test_nb, each seed layout end to end on a tiny fixture (everything not marked slow).
test: setup
	$(BIN)/python scripts/check_sync.py
	$(BIN)/python -m pytest -m "not slow"

## The slow tests only: the five report notebooks (quick) on the default corpus and on each seed layout,
## and a real notebook run interrupted and resumed.
test-slow: setup
	$(BIN)/python -m pytest -m slow

## Everything: the fast tests, then the slow ones (what CI runs).
test-all: test test-slow

## Export and clean after editing notebooks.
sync: setup
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

## Register a kernel for the venv and open JupyterLab on nbs/.
lab: setup
	$(BIN)/music-vae lab

bench: setup
	$(BIN)/python bench/features.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/cluster.py
