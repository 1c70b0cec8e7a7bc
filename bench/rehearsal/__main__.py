"""The whole programme at its real size, phase by phase, on a database of its own.

    make rehearsal CUSTOMERS=33700000         # hours; make rehearsal-tune first
    .venv/bin/python bench/rehearsal --customers 20000 --seconds 2
    .venv/bin/python bench/rehearsal --customers 33700000 --from expiry   # resume

Phases, in order: ``import`` (the registry CSV, generated with the real programme's
proportions, through ``import_eligibility``; baseline: raw COPY + INSERT ... SELECT into
a registry-shaped table), ``issuance`` (the four-way split through a real Celery worker,
the run created by one operations principal and approved by another; baseline: one raw
INSERT ... SELECT into a voucher-shaped table), ``opening`` (eligibility checks with wrk
against the deployment's gunicorn, cold then warm, beside a bare DRF endpoint),
``checkout`` (spread and hot), ``additions`` (the late file, revocations, a run issuing
the additions), ``expiry`` (every unspent voucher, under checkout load), ``finance``
(summary, reconcile, verify_ledger, verify_audit_chain, the export against COPY).

Each phase prints its figures, the issue's targets (stated for 33.7M customers, so a
smaller rehearsal prints its time and size figures scaled to 33.7M beside them, PASS or
MISS) and its checks, and records all of it in ``var/rehearsal/<customers>.json``, rewritten
after every phase. A missed target is reported; a failed check stops the rehearsal and
the exit status is 1.

The database is ``REHEARSAL_DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/voucher_service_rehearsal``): the import phase drops
and re-creates it (its name must contain "rehearsal"), the others continue on it (with
``--from PHASE`` or ``--only PHASE``, the same ``--customers``). Redis and the broker are
``REDIS_URL`` and ``CELERY_BROKER_URL``; cache keys carry the prefix ``rehearsal`` (or
``CACHE_KEY_PREFIX``), which is all the rehearsal ever deletes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/voucher_service_rehearsal"
PHASES = ("import", "issuance", "opening", "checkout", "additions", "expiry", "finance")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int,
                        default=int(os.environ.get("CUSTOMERS", "33700000")),
                        help="registry customers (default CUSTOMERS or 33,700,000)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--from", dest="start", choices=PHASES,
                       help="run this phase and the ones after it on the existing database")
    where.add_argument("--only", choices=PHASES, help="run this phase alone")
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="length of each HTTP load measurement (default 15)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of bare and hit checks (default 3)")
    parser.add_argument("--connections", type=int, default=32,
                        help="wrk connections for the eligibility checks (default 32)")
    parser.add_argument("--checkout-connections", type=int, default=8,
                        help="wrk connections for checkout (default 8)")
    parser.add_argument("--baseline-customers", type=int, default=1_000_000,
                        help="customers in the issuance baseline's raw INSERT (default "
                             "1,000,000; all of them below that)")
    parser.add_argument("--expiry-checkouts", type=int, default=200_000,
                        help="vouchers offered to checkout during expiry (default 200,000)")
    parser.add_argument("--summary-calls", type=int, default=200,
                        help="finance summary calls timed (default 200)")
    parser.add_argument("--database-url", default=os.environ.get("REHEARSAL_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--output", help="the JSON record (default "
                                         "var/rehearsal/<customers>.json)")
    parser.add_argument("--workdir", help="CSV files and server logs (default "
                                          "var/rehearsal/<customers>/)")
    args = parser.parse_args()
    if args.customers < 1_000:
        parser.error("--customers: at least 1,000")
    return args


def recreate_database(url: str) -> None:
    """Drops and creates the rehearsal database (sessions on it are ended first)."""
    import environ
    import psycopg
    from psycopg import sql

    config = environ.Env.db_url_config(url)
    name = config["NAME"]
    if "rehearsal" not in name:
        raise SystemExit(f"refusing to drop {name!r}: a rehearsal database's name contains "
                         "'rehearsal'")
    params = {"host": config.get("HOST") or None, "port": config.get("PORT") or None,
              "user": config.get("USER") or None, "password": config.get("PASSWORD") or None,
              "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def main() -> int:
    args = arguments()
    phases = list(PHASES)
    if args.only:
        phases = [args.only]
    elif args.start:
        phases = phases[phases.index(args.start):]
    fresh = phases[0] == "import"
    if fresh:
        recreate_database(args.database_url)
    # Before Django is set up (``common``): this process and every process it starts (the
    # worker, gunicorn) use the rehearsal database and the rehearsal's cache keys.
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("CACHE_KEY_PREFIX", "rehearsal")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path[0] = str(BENCH)  # run as a directory, the path starts at the package itself
    import common  # noqa: F401  (sets Django up)

    from rehearsal import driver

    return driver.run(args, phases, args.database_url, fresh)


if __name__ == "__main__":
    sys.exit(main())
