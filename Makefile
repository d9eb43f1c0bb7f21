PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench models clean

# Create the virtual environment once: the pinned CPU torch first (it lies on this disk),
# then the package with its dev extras.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,serve,export]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/timesformer demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/timesformer bench --standard --write docs/performance.md

models: $(STAMP)
	$(VENV)/bin/timesformer models

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
