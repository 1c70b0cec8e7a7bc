"""docs/API.md and the code it describes, held in step.

API.md writes each operation as a heading ``### `METHOD /path` `` (the path as the OpenAPI
document writes it), each management command as a heading ``### `manage.py NAME ...` ``
and each environment variable as a row ``| `NAME` | ...`` of its "Environment variables"
table. Every operation of the OpenAPI document, every command of the project's apps and
every variable the code reads must be written there, and everything written there must
exist: a heading left behind by a removed endpoint misleads as much as a missing one.
Routes outside the OpenAPI document (health, schema, dashboard) may be written too; they
must resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management import get_commands
from django.urls import Resolver404, resolve
from drf_spectacular.generators import SchemaGenerator

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "API.md"
PROJECT_PACKAGES = ("config", "voucher_service", "accounts", "vouchers")

_OPERATION = re.compile(r"^### `([A-Z]+) (/[^`\s]*)`", re.MULTILINE)
_COMMAND = re.compile(r"^### `manage\.py ([a-z_]+)", re.MULTILINE)
_VARIABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|", re.MULTILINE)
# How the code reads a variable: django-environ's typed readers, settings' ``_secret`` and
# ``os.environ.get`` (the beat schedule is built before the settings load).
_VARIABLE_READ = re.compile(
    r'(?:\benv\.\w+|\b_secret|\bos\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"')


def _section(text: str, title: str) -> str:
    """The body of the ``## title`` section: up to the next ``## `` heading."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def documented_operations(text: str) -> set[str]:
    return {f"{method} {path}" for method, path in _OPERATION.findall(text)}


def schema_operations() -> set[str]:
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}


def _route_outside_schema(operation: str) -> bool:
    """A route the OpenAPI document does not describe (every /api/v1/ one is in it)."""
    path = operation.split(" ", 1)[1]
    if path.startswith("/api/v1/"):
        return False
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def operation_mismatches(text: str) -> tuple[list[str], list[str]]:
    """(operations of the OpenAPI document that ``text`` does not write, operations that
    ``text`` writes and the service does not have)."""
    documented, schema = documented_operations(text), schema_operations()
    missing = sorted(schema - documented)
    stale = sorted(op for op in documented - schema if not _route_outside_schema(op))
    return missing, stale


def test_every_operation_is_written_and_every_written_one_exists():
    missing, stale = operation_mismatches(API_DOC.read_text())
    assert missing == [], "operations of the OpenAPI document missing from docs/API.md"
    assert stale == [], "operations in docs/API.md that the service does not have"


def test_a_missing_and_a_stale_operation_are_both_named():
    """The check above can fail: drop one operation's heading and add two that name
    nothing real (one under /api/v1/, one outside it)."""
    dropped = sorted(schema_operations())[0]
    heading = f"### `{dropped}`\n"
    text = API_DOC.read_text()
    assert heading in text
    text = text.replace(heading, "") + (
        "\n### `GET /api/v1/no-such-endpoint`\n\n### `GET /no-such-page`\n")

    assert operation_mismatches(text) == (
        [dropped], ["GET /api/v1/no-such-endpoint", "GET /no-such-page"])


def test_the_health_and_dashboard_routes_are_written():
    written = documented_operations(API_DOC.read_text()) - schema_operations()
    assert {"GET /healthz", "GET /readyz", "GET /api/schema/", "GET /api/docs/",
            "GET /dashboard/"} <= written


def test_every_command_is_written_and_every_written_one_exists():
    commands = {name for name, app in get_commands().items()
                if app.split(".")[0] in PROJECT_PACKAGES}
    written = set(_COMMAND.findall(_section(API_DOC.read_text(), "Commands")))
    assert sorted(commands - written) == [], "commands missing from docs/API.md"
    assert sorted(written - commands) == [], "commands in docs/API.md that do not exist"


def test_every_environment_variable_is_written_and_every_written_one_is_read():
    read = {name for package in PROJECT_PACKAGES for module in (ROOT / package).rglob("*.py")
            for name in _VARIABLE_READ.findall(module.read_text())}
    written = set(_VARIABLE_ROW.findall(_section(API_DOC.read_text(), "Environment variables")))
    assert "DATABASE_URL" in read and "ISSUANCE_TICK_SECONDS" in read  # the scan finds both kinds
    assert sorted(read - written) == [], "variables missing from docs/API.md"
    assert sorted(written - read) == [], "variables in docs/API.md that nothing reads"
