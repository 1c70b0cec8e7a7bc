"""Schemathesis against our own OpenAPI document: no 500, responses match the schema.

Every operation is called with a principal of the role that may use it (so the fuzz
reaches validation and business rules, not just the 403 gate), on a database holding a
campaign with issued vouchers. ``FUZZ_EXAMPLES`` sets the examples per operation: small
in ``make test``, large in ``make fuzz``.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.identity import mint_customer_token
from accounts.services import create_principal
from vouchers.issuance.chunk import issue_chunk

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
CUSTOMER_ID = 7

# The role each path may be called by, by its first matching prefix.
ROLE_BY_PREFIX = (
    ("/api/v1/finance/", "finance"),
    ("/api/v1/audit-events", "finance"),
    ("/api/v1/redemptions", "checkout"),
    ("/api/v1/support/", "support"),
    ("/api/v1/accounts/rejoined", "identity"),
    ("/api/v1/me/", "customer"),
    ("/api/v1/claims/", "customer"),
)


# A campaign's paths with these endings are the customer's (the rest are operations').
CUSTOMER_CAMPAIGN_PATHS = ("/eligibility", "/appeals")


def role_for(path: str) -> str:
    if path.startswith("/api/v1/campaigns/") and path.endswith(CUSTOMER_CAMPAIGN_PATHS):
        return "customer"
    return next((role for prefix, role in ROLE_BY_PREFIX if path.startswith(prefix)),
                "operations")


@pytest.fixture
def wsgi_app(db):
    """The real WSGI application, minus the per-request connection recycling that would
    close the test's transaction (Django's own test client switches it off the same way)."""
    from config.wsgi import application

    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield application
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app, make_campaign, load_registry):

    campaign = make_campaign(slug="fuzz")
    load_registry(campaign, {cid: "closed" if cid % 4 == 0 else "active" for cid in range(1, 21)})
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=21, run_id=None, chunk_id=None)
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def tokens(db):
    issued = {role: create_principal(role=role, name=f"fuzz-{role}")[1]
              for role in ("operations", "finance", "support", "checkout", "identity")}
    issued["customer"] = mint_customer_token(CUSTOMER_ID)
    return issued


def problem_json_errors(ctx, response, case) -> None:
    """Every error is an RFC 9457 problem with a stable ``code``."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/problem+json"), content_type
    body = response.json()
    assert isinstance(body.get("code"), str) and body["code"], body
    assert body.get("status") == response.status_code, body


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_holds_its_schema_under_fuzzing(case, tokens):
    case.headers = {**(case.headers or {}),
                    "Authorization": f"Bearer {tokens[role_for(case.path)]}"}
    case.call_and_validate(checks=[
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_schema_conformance, problem_json_errors,
    ])
