# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3

.PHONY: install run test lint

install:
	$(PYTHON) -m pip install -q -e .

run: install
	qactuar

test:
	$(PYTHON) -m pip install -q -e '.[test]'
	bash scripts/install-test-tools
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy qactuar
	$(PYTHON) -m pytest
