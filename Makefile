# The README's two commands: `make demo` and `make test`. Both install what they need into
# a project virtualenv (.venv): a Debian system Python refuses a global pip install.
PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
PIP_INSTALL = $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test test-fast install install-test lint venv system-deps

$(PY):
	@$(PYTHON) -m venv $(VENV) || { echo "make: cannot create $(VENV); on Debian: apt-get install python3-venv" >&2; exit 1; }

venv: $(PY)

install: $(PY)
	$(PIP_INSTALL) -e .

system-deps:
	scripts/install-system-deps

# system-deps first: on Debian it also brings python3-venv, which the venv needs
install-test: system-deps $(PY)
	$(PIP_INSTALL) -e '.[test]'

demo: install
	$(PY) -m dashboard.main demo

# TEST_WORKERS pytest-xdist workers, each test file whole on one worker (its module fixtures
# shared); TEST_WORKERS=0 runs serially (docs/development.md has the measured times)
TEST_WORKERS ?= 3
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile

test: install-test
	$(PY) -m ruff check dashboard tests bench scripts/screenshots.py
	$(VENV)/bin/lint-imports
	$(PY) scripts/with-devstore $(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: install-test
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow and not e2e"

lint: install-test
	$(PY) -m ruff check dashboard tests bench scripts/screenshots.py
	$(VENV)/bin/lint-imports
