# The README's commands. Each target runs the idempotent setup first.
BIN := .venv/bin

.PHONY: setup reproduce reproduce-quick test sync lab bench
setup:
	@bash scripts/setup.sh

## Build the default dataset and execute the report notebooks with full parameters.
reproduce: setup
	$(BIN)/music-vae reproduce

## The same end to end with quick parameters (writes reports/quick/, never figures/).
reproduce-quick: setup
	$(BIN)/music-vae reproduce --quick

## Notebooks and library in sync and clean, then every notebook (quick) and unit test.
test: setup
	$(BIN)/python scripts/check_sync.py
	$(BIN)/python -m pytest

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
