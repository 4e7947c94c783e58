# The README's two commands: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
PIP_INSTALL = $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore

.PHONY: demo test test-fast install install-test lint

install:
	$(PIP_INSTALL) -e .

install-test:
	scripts/install-system-deps
	$(PIP_INSTALL) -e '.[test]'

demo: install
	toska-kv demo

test: install-test
	$(PYTHON) -m ruff check dashboard tests bench scripts/screenshots.py
	scripts/with-devstore $(PYTHON) -m pytest

test-fast:
	$(PYTHON) -m pytest -m "not slow and not e2e"

lint:
	$(PYTHON) -m ruff check dashboard tests bench scripts/screenshots.py
