# The two commands of the README: `make run` and `make test`.
#
# Both work in the project's virtualenv .venv, made by scripts/venv with
# $(PYTHON) (default python3, e.g. Debian's /usr/bin/python3, which is never
# pip-installed into) and reinstalled only when setup.cfg or pyproject.toml
# change. `make run PYTHON=python3.12` picks the interpreter that makes it;
# without PYTHON an existing .venv is kept.
VENV := .venv
export PYTHON

.PHONY: run test lint clean

run:
	@bash scripts/venv examples
	$(VENV)/bin/qactuar

test:
	@bash scripts/venv test examples
	bash scripts/install-test-tools
	$(VENV)/bin/python -m ruff check .
	$(VENV)/bin/python -m mypy qactuar
	$(VENV)/bin/python -m pytest

lint:
	@bash scripts/venv test examples
	$(VENV)/bin/python -m ruff check .
	$(VENV)/bin/python -m mypy qactuar

clean:
	rm -rf $(VENV)
