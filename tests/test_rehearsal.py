"""The full-size rehearsal (``bench/rehearsal``, ``make rehearsal``) at a few thousand
customers: every phase and every check, so that it keeps working as the code changes.

It runs as ``make rehearsal`` does, in a process of its own that starts a real Celery
worker, gunicorn and wrk, on a database of its own (this suite's database name with
``_rehearsal_test`` after it: never the suite's test database, never ``make
rehearsal``'s), with short loads. Its PostgreSQL tuning step is not applied here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings

from tests.processes import ROOT

pytestmark = pytest.mark.slow

CUSTOMERS = 3_000
PHASES = ("import", "issuance", "opening", "checkout", "additions", "expiry", "finance")


def _rehearsal_url() -> str:
    configured = os.environ.get("DATABASE_URL") or (
        "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**settings.DATABASES["default"]))
    parts = urlsplit(configured)
    name = parts.path.lstrip("/").removeprefix("test_")
    return parts._replace(path=f"/{name}_rehearsal_test").geturl()


@pytest.mark.timeout(240)
def test_rehearsal_runs_every_phase_with_every_check_passing(tmp_path):
    assert shutil.which("wrk"), "wrk is missing: `make wrk` installs it (make test does)"
    url = _rehearsal_url()
    record = tmp_path / "rehearsal.json"
    try:
        done = subprocess.run(
            [sys.executable, "bench/rehearsal", "--customers", str(CUSTOMERS),
             "--seconds", "2", "--rounds", "1", "--connections", "16",
             "--checkout-connections", "4", "--summary-calls", "20",
             "--expiry-checkouts", "2000", "--output", str(record),
             "--workdir", str(tmp_path / "work")],
            cwd=ROOT, env={**os.environ, "REHEARSAL_DATABASE_URL": url},
            capture_output=True, text=True, timeout=230)
    finally:
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
    output = done.stdout[-6000:] + done.stderr[-4000:]
    assert done.returncode == 0, output

    figures = json.loads(record.read_text())
    assert figures["ok"] is True
    assert tuple(figures["phases"]) == PHASES, output
    for name, phase in figures["phases"].items():
        failed = [c for c in phase["checks"] if not c["ok"]]
        assert phase["checks"] and not failed, (name, failed)
        measured = phase["measured"]
        assert measured["wall_seconds"] > 0 and measured["sizes"]["database"] > 0, name
        assert any(t["name"] == "total database size" for t in phase["targets"]), name
    issued = figures["phases"]["issuance"]["figures"]["run"]
    assert issued["vouchers_issued"] == 4 * CUSTOMERS
    assert figures["phases"]["opening"]["figures"]["explain_first_check"]
    assert "shared_buffers" in figures["settings"]
