# The two commands: `make run` (the whole service, with a demo campaign) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DEBUG ?= 1

.PHONY: run test test-topology lint bench load fuzz services migrate clean wrk pgbouncer \
	rehearsal rehearsal-tune rehearsal-untune

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

# The suite flushes its cache between tests: Redis databases of its own, not the dev ones.
# After the whole suite, the tests of checkout, idempotency, issuance, claims, the registry
# import, the export and the audit trail run again through PgBouncer in transaction pooling
# mode, each test transaction by transaction as the service runs (docs/DEPLOYMENT.md).
TOPOLOGY_TESTS := tests/redemption/test_concurrency.py tests/redemption/test_idempotency.py \
	tests/redemption/test_checkout_at_once.py tests/foundation/test_routines.py \
	tests/issuance/test_concurrency.py tests/issuance/test_issuing.py \
	tests/eligibility/test_claims_concurrency.py tests/eligibility/test_import.py \
	tests/eligibility/test_import_parallel.py \
	tests/finance/test_export_formulas.py \
	tests/finance/test_redemption_reports.py::test_export_has_a_header_and_matches_the_list \
	tests/finance/test_redemption_reports.py::test_export_of_100k_redemptions_streams_in_flat_memory \
	tests/audit/test_audit_chain.py
POOLED_PYTEST := $(VENV)/bin/pytest --through-pgbouncer $(TOPOLOGY_TESTS)

test test-topology: export REDIS_URL ?= redis://127.0.0.1:6379/2
test test-topology: export CELERY_BROKER_URL ?= redis://127.0.0.1:6379/3
test: services lint wrk pgbouncer
	scripts/ensure-browser
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest
	$(POOLED_PYTEST)

test-topology: services pgbouncer
	$(POOLED_PYTEST)

# Benchmarks and the long fuzz are separate from `make test`; each benchmark prints its
# figure beside a baseline measured in the same run (bench/RESULTS.md has the latest).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/voucher_service_bench

bench: services wrk
	for script in bench/bench_*.py; do \
		DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) $$script || exit 1; \
	done

# The whole programme at its real size, phase by phase, on a database of its own (hours at
# the default 33.7M customers; figures in var/rehearsal/<customers>.json). For the full run,
# `make rehearsal-tune` first (it restarts PostgreSQL with bench/rehearsal_pg.conf; never
# part of `make test`). REHEARSAL_OPTIONS: e.g. --from expiry, --seconds 5.
CUSTOMERS ?= 33700000
REHEARSAL_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/voucher_service_rehearsal
REHEARSAL_OPTIONS ?=

rehearsal: export REDIS_URL ?= redis://127.0.0.1:6379/12
rehearsal: export CELERY_BROKER_URL ?= redis://127.0.0.1:6379/13
rehearsal: services wrk
	REHEARSAL_DATABASE_URL=$(REHEARSAL_DATABASE_URL) $(PY) bench/rehearsal \
		--customers $(CUSTOMERS) $(REHEARSAL_OPTIONS)

rehearsal-tune:
	scripts/rehearsal-tune

rehearsal-untune:
	scripts/rehearsal-tune --undo

# Debian's wrk, the HTTP load generator of the benchmarks and the rehearsal (its test too).
wrk:
	command -v wrk >/dev/null || { [ "$$(id -u)" -eq 0 ] || sudo_=sudo; \
		$$sudo_ apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| { $$sudo_ apt-get update -qq && $$sudo_ apt-get install -y -qq wrk >/dev/null; }; }

# Debian's PgBouncer, run by the topology tests and the benchmarks as a process of their own.
pgbouncer:
	scripts/ensure-pgbouncer

load: services
	$(PY) -m pip install --quiet -e '.[dev,load]'
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) bench/load_opening_day.py

fuzz: services
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(VENV)/bin/pytest tests/hardening/test_fuzz.py

clean:
	rm -rf $(VENV) staticfiles var
