"""Filing an appeal: the answer, the rules that refuse one, the limit, and that the
customer's words reach neither the audit trail nor a log."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pytest
from django.utils import timezone

from tests.appeals.conftest import (
    APPELLANT,
    OTHER_APPELLANT,
    REASON,
    REGISTERED,
    decide_url,
    file,
    file_url,
)
from voucher_service.models import AuditEvent
from vouchers.appeals.models import Appeal

pytestmark = pytest.mark.django_db


def test_filing_answers_201_with_the_open_appeal_and_audits_ids_only(campaign,
                                                                     customer_client):
    response = file(customer_client(APPELLANT))
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "campaign", "status", "reason", "created_at",
                         "decision_reason", "decided_at"}
    assert (body["campaign"], body["status"], body["reason"]) == ("breach", "open", REASON)
    assert (body["decision_reason"], body["decided_at"]) == (None, None)
    uuid.UUID(body["id"])  # opaque, not a counter
    assert dt.datetime.fromisoformat(body["created_at"]).utcoffset() is not None
    event = AuditEvent.objects.get(action="appeal.filed")
    assert (event.target_type, event.target_id, event.actor) == (
        "appeal", body["id"], f"customer:{APPELLANT}")
    assert event.payload == {"campaign": "breach", "customer_id": APPELLANT}


@pytest.mark.parametrize("reason", ["x", "가" * 2000])
def test_a_reason_of_1_to_2000_characters_is_taken(campaign, customer_client, reason):
    response = file(customer_client(APPELLANT), reason)
    assert response.status_code == 201
    assert Appeal.objects.get().reason == reason


@pytest.mark.parametrize("body", [
    {"reason": ""},
    {"reason": "   "},
    {"reason": "x" * 2001},
    {"reason": 5},
    {"reason": None},
    {"reason": ["a reason"]},
    {"reason": {"text": "a reason"}},
    {},
    {"why": REASON},
])
def test_invalid_bodies_are_400_and_change_nothing(campaign, customer_client, body):
    response = customer_client(APPELLANT).post(file_url(), body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_error" and "reason" in problem["errors"]
    assert not Appeal.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize(("content_type", "raw"), [
    ("application/json", b'{"reason": '),
    ("application/json", b'["a reason"]'),
    ("text/plain", b"a reason"),
])
def test_malformed_bodies_are_4xx_problems(campaign, customer_client, content_type, raw):
    response = customer_client(APPELLANT).generic("POST", file_url(), raw,
                                                  content_type=content_type)
    assert 400 <= response.status_code < 500
    assert response["Content-Type"] == "application/problem+json"
    assert not Appeal.objects.exists()


def test_unknown_fields_are_ignored_so_nobody_files_for_someone_else(campaign,
                                                                     customer_client):
    """As everywhere in the API, unknown body fields are ignored: the appeal is the
    signed-in customer's whatever the body says."""
    response = customer_client(APPELLANT).post(
        file_url(), {"reason": REASON, "customer_id": OTHER_APPELLANT, "status": "accepted"},
        format="json")
    assert response.status_code == 201 and response.json()["status"] == "open"
    assert Appeal.objects.get().customer_id == APPELLANT


def test_a_registry_customer_is_409_already_eligible(campaign, customer_client):
    response = file(customer_client(REGISTERED))
    assert response.status_code == 409
    assert response.json()["code"] == "already_eligible"
    assert not Appeal.objects.exists()


def test_one_open_appeal_per_customer_and_campaign(campaign, make_campaign, customer_client,
                                                   ops):
    client = customer_client(APPELLANT)
    first = file(client).json()
    again = file(client, "Another try.")
    assert again.status_code == 409 and again.json()["code"] == "appeal_exists"
    assert file(customer_client(OTHER_APPELLANT)).status_code == 201  # another customer
    make_campaign(slug="second")
    assert file(client, slug="second").status_code == 201  # another campaign
    assert ops.post(decide_url(first["id"], "reject"), {"reason": "Not in the leaked data."},
                    format="json").status_code == 200
    assert file(client, "I have new evidence.").status_code == 201  # decided: may appeal again
    assert Appeal.objects.filter(customer_id=APPELLANT).count() == 3


def test_unknown_campaign_is_404(db, customer_client):
    response = file(customer_client(APPELLANT), slug="nope")
    assert response.status_code == 404 and response.json()["code"] == "campaign_not_found"


def test_before_eligibility_opens_it_is_403_with_the_opening_time(make_campaign,
                                                                 customer_client):
    opens = timezone.now() + dt.timedelta(hours=3)
    make_campaign(slug="breach", opens_at=opens)
    response = file(customer_client(APPELLANT))
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "eligibility_not_open"
    assert dt.datetime.fromisoformat(body["opens_at"]) == opens
    assert not Appeal.objects.exists()


def test_filing_is_limited_per_customer_with_retry_after(campaign, customer_client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "appeal_customer": "2/hour"}}
    client = customer_client(APPELLANT)
    statuses = [file(client).status_code for _ in range(2)]
    refused = file(client)
    assert statuses == [201, 409]  # refused filings count too
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert file(customer_client(OTHER_APPELLANT)).status_code == 201  # a limit of its own
    assert customer_client(APPELLANT).get("/api/v1/me/appeals").status_code == 200


def test_the_reason_reaches_no_audit_payload_and_no_log(campaign, customer_client, ops,
                                                        caplog):
    """The customer's words, the operator's note and the rejection's reason are stored and
    shown, but never audited or logged (personal data)."""
    caplog.set_level(logging.DEBUG)
    words = {"filed": "Reason-7f3a my name is Kim Minji", "note": "Note-91c2 called her",
             "second": "Reason-0b4d again", "rejection": "Rejection-55e1 not affected"}
    first = file(customer_client(APPELLANT), words["filed"]).json()
    ops.post(decide_url(first["id"], "accept"), {"account_status": "dormant",
                                                 "note": words["note"]}, format="json")
    second = file(customer_client(OTHER_APPELLANT), words["second"]).json()
    # A refused filing and a refused decision are logged (4xx warnings): still no words.
    assert file(customer_client(OTHER_APPELLANT), words["second"]).status_code == 409
    assert ops.post(decide_url(first["id"], "reject"), {"reason": words["rejection"]},
                    format="json").status_code == 409
    ops.post(decide_url(second["id"], "reject"), {"reason": words["rejection"]}, format="json")

    events = AuditEvent.objects.filter(action__startswith="appeal.")
    assert sorted(events.values_list("action", flat=True)) == [
        "appeal.accepted", "appeal.filed", "appeal.filed", "appeal.rejected"]
    audited = str([(e.payload, e.target_id, e.actor) for e in events])
    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert logged  # the requests were logged
    for marker in ("Reason-7f3a", "Note-91c2", "Reason-0b4d", "Rejection-55e1", "Kim Minji"):
        assert marker not in audited
        assert marker not in logged
    assert {e.payload.get("decision") for e in events} == {None, "accepted", "rejected"}
    assert events.get(action="appeal.accepted").payload == {
        "campaign": "breach", "customer_id": APPELLANT, "decision": "accepted",
        "account_status": "dormant"}
