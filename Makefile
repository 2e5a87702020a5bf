# The two commands of the README: `make run` and `make test`.
#
# Both work in the project's virtualenv .venv, made by scripts/venv with
# $(PYTHON) (default python3, e.g. Debian's /usr/bin/python3, which is never
# pip-installed into) and reinstalled only when setup.cfg or pyproject.toml
# change. `make run PYTHON=python3.12` picks the interpreter that makes it;
# without PYTHON an existing .venv is kept.
VENV := .venv
export PYTHON
# pytest's workers (pytest-xdist): one per core by default; most tests wait on
# processes and sockets, so two cores run the suite in about half the time.
# `make test PYTEST_ARGS=` runs it in one process; `PYTEST_ARGS='-n 4 -x'` etc.
PYTEST_ARGS ?= -n auto

.PHONY: run test test-under-load lint clean autobahn

run:
	@bash scripts/venv examples
	$(VENV)/bin/qactuar

test:
	@bash scripts/venv test examples
	bash scripts/install-test-tools
	$(VENV)/bin/python -m ruff check .
	$(VENV)/bin/python -m mypy qactuar
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# make test while stress-ng keeps every core busy (installs stress-ng)
test-under-load:
	bash scripts/test-under-load

# the full Autobahn-equivalent WebSocket run, every model (scripts/autobahn; ~45 min)
autobahn:
	@bash scripts/venv test examples
	PYTHON_BIN=$(VENV)/bin/python bash scripts/autobahn $(AUTOBAHN_ARGS)

lint:
	@bash scripts/venv test examples
	$(VENV)/bin/python -m ruff check .
	$(VENV)/bin/python -m mypy qactuar

clean:
	rm -rf $(VENV)
