# Everything a fresh machine needs lives here: `make demo` and `make test` set up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Pinned framework: the release this project is built and checked against.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.senet-installed
# Material's notice about its successor is not a build warning.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs

.PHONY: setup demo test lint docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[test,docs]" $(TORCH_PINS)
	touch $(STAMP)

demo: setup
	$(PY) -m senet demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q
	$(MKDOCS) build --strict --quiet

# The documentation site in site/; --strict fails on a broken link or a missing API reference.
docs: setup
	$(MKDOCS) build --strict

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info site
