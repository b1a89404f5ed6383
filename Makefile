# Two commands on a fresh machine with Python 3.11 and pip:  make demo  /  make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= plans/demo

.PHONY: demo test venv bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/evdc plan --demo --out $(DEMO_OUT)

# one test process per core (pytest-xdist); a file's tests share a process, so its module fixtures are built once
test: venv
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: venv
	$(BIN)/python benchmarks/plan_scaling.py

clean:
	rm -rf $(VENV) plans .pytest_cache
