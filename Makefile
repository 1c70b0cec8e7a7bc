# The two commands: `make run` (the whole service, with a demo campaign) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DEBUG ?= 1

.PHONY: run test lint bench fuzz services migrate clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

services: $(STAMP)
	scripts/ensure-services

migrate: services
	$(PY) manage.py migrate --noinput

run: migrate
	scripts/run-dev

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -r config voucher_service accounts vouchers -x '*/migrations/*'

test: services lint
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

bench: migrate
	$(PY) -m bench

clean:
	rm -rf $(VENV) staticfiles var
