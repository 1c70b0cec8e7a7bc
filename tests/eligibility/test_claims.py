"""Closed-account claims: start (same answer either way), the code by SMS, confirm (wrong,
spent, expired, already claimed), the ledger, re-joins, throttles, no phone anywhere."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from django.core.cache import cache as default_cache
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from tests.eligibility.conftest import (
    ACTIVE,
    CLOSED_A,
    CLOSED_A2,
    CLOSED_B,
    NEW_ACCOUNT,
    PHONE_A,
    PHONE_B,
    PHONE_UNKNOWN,
    STRANGER,
    code_in,
    deliver_outbox,
    messages,
)
from tests.processes import free_port
from voucher_service.models import AuditEvent
from vouchers.eligibility import cache, tasks
from vouchers.eligibility.models import Claim, ClaimChallenge
from vouchers.ledger.verification import verify_ledger
from vouchers.models import LedgerPosting, LedgerTransaction, Voucher

pytestmark = pytest.mark.django_db
START = "/api/v1/claims/closed-account"


def confirm_url(challenge_id: str) -> str:
    return f"{START}/{challenge_id}/confirm"


def start(client, phone: str = PHONE_A, campaign: str = "breach"):
    return client.post(START, {"campaign": campaign, "phone": phone}, format="json")


def start_and_receive(client, sms_dir, phone: str = PHONE_A) -> tuple[str, str]:
    """Starts a claim, runs the delivery task and reads the code from the SMS it wrote."""
    response = start(client, phone)
    assert response.status_code == 202, response.content
    before = len(messages(sms_dir))
    assert deliver_outbox() == 1
    return response.json()["challenge_id"], code_in(messages(sms_dir)[before])


def closed_a_vouchers():
    return Voucher.objects.filter(registry_customer_id__in=[CLOSED_A, CLOSED_A2])


def test_happy_path_moves_both_accounts_vouchers_and_posts_the_ledger(issued, customer_client,
                                                                      sms_dir):
    client = customer_client(NEW_ACCOUNT)
    balances = dict(closed_a_vouchers().values_list("pk", "balance_krw"))
    challenge_id, code = start_and_receive(client, sms_dir)

    response = client.post(confirm_url(challenge_id), {"code": code}, format="json")
    assert response.status_code == 200, response.content
    claimed = response.json()["claimed_vouchers"]
    assert len(claimed) == 4 and {v["status"] for v in claimed} == {"active"}

    moved = closed_a_vouchers()
    assert {(v.customer_id, v.status) for v in moved} == {(NEW_ACCOUNT, "active")}
    assert dict(moved.values_list("pk", "balance_krw")) == balances
    transfers = LedgerTransaction.objects.filter(reason="claim_transfer")
    assert sorted(transfers.values_list("voucher_id", flat=True)) == sorted(balances)
    postings = LedgerPosting.objects.filter(transaction__in=transfers)
    assert dict(postings.values_list("account").annotate(s=Sum("amount_krw"))) == {
        "unclaimed": sum(balances.values()), "liability": -sum(balances.values())}
    assert verify_ledger(campaign_id=issued.pk).ok
    assert set(Claim.objects.values_list("registry_customer_id", "customer_id", "via")) == {
        (CLOSED_A, NEW_ACCOUNT, "code"), (CLOSED_A2, NEW_ACCOUNT, "code")}
    event = AuditEvent.objects.filter(action="claim.confirmed").get()
    assert event.actor == f"customer:{NEW_ACCOUNT}"
    assert event.payload["registry_customer_ids"] == [CLOSED_A, CLOSED_A2]
    assert Voucher.objects.filter(registry_customer_id=CLOSED_B, status="unclaimed").count() == 2


def test_matching_and_unmatched_phones_get_the_same_answer_and_work(issued, customer_client,
                                                                     sms_dir):
    matching = start(customer_client(NEW_ACCOUNT), PHONE_A)
    unmatched = start(customer_client(STRANGER), PHONE_UNKNOWN)
    assert matching.status_code == unmatched.status_code == 202
    a, b = matching.json(), unmatched.json()
    assert set(a) == set(b) == {"challenge_id", "expires_at"}
    assert abs(dt.datetime.fromisoformat(a["expires_at"])
               - dt.datetime.fromisoformat(b["expires_at"])) < dt.timedelta(seconds=5)
    assert matching.headers.keys() - {"X-Request-ID"} == unmatched.headers.keys() - {
        "X-Request-ID"}
    rows = {str(c.pk): c for c in ClaimChallenge.objects.all()}
    assert set(rows) == {a["challenge_id"], b["challenge_id"]}
    assert len(bytes(rows[a["challenge_id"]].outbox)) == len(bytes(rows[b["challenge_id"]].outbox))
    assert AuditEvent.objects.filter(action="claim.started").count() == 2

    assert deliver_outbox() == 1  # both envelopes taken, one message sent
    assert ClaimChallenge.objects.filter(outbox__isnull=False).count() == 0
    [sent] = messages(sms_dir)
    assert sent["to"] == "01012345678"


def test_the_message_has_the_code_and_no_link_nor_anyone_elses_data(issued, customer_client,
                                                                    sms_dir):
    start_and_receive(customer_client(NEW_ACCOUNT), sms_dir)
    [message] = messages(sms_dir)
    assert set(message) == {"to", "body", "sent_at"}
    body = message["body"]
    code = re.search(r"\b[0-9]{6}\b", body)
    assert code
    assert "10 minutes" in body and "open the shop's app yourself" in body.lower()
    assert not re.search(r"https?:|www\.|://|\b[\w-]+\.(com|kr|net|org|io|ly|me)\b", body, re.I)
    # The random code may hold any digits: look for other data in the rest of the text.
    rest = body.replace(code.group(), "")
    for other in (str(CLOSED_A), str(CLOSED_A2), str(CLOSED_B), str(ACTIVE), "9876", "5432"):
        assert other not in rest
    assert dt.datetime.fromisoformat(message["sent_at"])


def test_a_wrong_code_is_400_and_the_fifth_spends_the_challenge(issued, customer_client,
                                                                 sms_dir):
    client = customer_client(NEW_ACCOUNT)
    challenge_id, code = start_and_receive(client, sms_dir)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1, 0):
        response = client.post(confirm_url(challenge_id), {"code": wrong}, format="json")
        assert response.status_code == 400
        assert (response.json()["code"], response.json()["attempts_left"]) == ("invalid_code",
                                                                               left)
    response = client.post(confirm_url(challenge_id), {"code": code}, format="json")
    assert response.status_code == 410 and response.json()["code"] == "challenge_expired"
    assert closed_a_vouchers().filter(status="unclaimed").count() == 4


def test_a_malformed_code_is_a_validation_error(issued, customer_client, sms_dir):
    client = customer_client(NEW_ACCOUNT)
    challenge_id, _ = start_and_receive(client, sms_dir)
    response = client.post(confirm_url(challenge_id), {"code": "12a45"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def test_an_expired_challenge_is_410(issued, customer_client, sms_dir):
    client = customer_client(NEW_ACCOUNT)
    challenge_id, code = start_and_receive(client, sms_dir)
    ClaimChallenge.objects.filter(pk=challenge_id).update(
        created_at=timezone.now() - dt.timedelta(minutes=11),
        expires_at=timezone.now() - dt.timedelta(minutes=1))
    response = client.post(confirm_url(challenge_id), {"code": code}, format="json")
    assert response.status_code == 410 and response.json()["code"] == "challenge_expired"


def test_an_expired_envelope_is_never_sent(issued, customer_client, sms_dir, settings):
    settings.CLAIM_CODE_TTL_SECONDS = 1
    start(customer_client(NEW_ACCOUNT))
    ClaimChallenge.objects.update(created_at=timezone.now() - dt.timedelta(minutes=5))
    time.sleep(2.1)  # Fernet's own clock: the envelope's timestamp must be past its TTL
    assert deliver_outbox() == 0
    assert messages(sms_dir) == []
    assert ClaimChallenge.objects.filter(outbox__isnull=False).count() == 0


def test_confirming_twice_or_a_second_challenge_is_409(issued, customer_client, sms_dir):
    first, second = customer_client(NEW_ACCOUNT), customer_client(STRANGER)
    challenge_1, code_1 = start_and_receive(first, sms_dir)
    challenge_2, code_2 = start_and_receive(second, sms_dir)
    assert first.post(confirm_url(challenge_1), {"code": code_1},
                      format="json").status_code == 200
    again = first.post(confirm_url(challenge_1), {"code": code_1}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_claimed"
    late = second.post(confirm_url(challenge_2), {"code": code_2}, format="json")
    assert late.status_code == 409 and late.json()["code"] == "already_claimed"
    assert set(closed_a_vouchers().values_list("customer_id", flat=True)) == {NEW_ACCOUNT}


def test_after_a_claim_the_phone_matches_nothing_so_no_code_is_sent(issued, customer_client,
                                                                    sms_dir):
    client = customer_client(NEW_ACCOUNT)
    challenge_id, code = start_and_receive(client, sms_dir)
    client.post(confirm_url(challenge_id), {"code": code}, format="json")
    assert start(customer_client(STRANGER)).status_code == 202
    assert deliver_outbox() == 0


def test_another_customers_challenge_or_a_malformed_id_is_404(issued, customer_client, sms_dir):
    challenge_id, code = start_and_receive(customer_client(NEW_ACCOUNT), sms_dir)
    other = customer_client(STRANGER).post(confirm_url(challenge_id), {"code": code},
                                            format="json")
    assert other.status_code == 404 and other.json()["code"] == "challenge_not_found"
    assert customer_client(NEW_ACCOUNT).post(f"{START}/not-a-uuid/confirm", {"code": code},
                                             format="json").status_code == 404
    assert closed_a_vouchers().filter(status="unclaimed").count() == 4


def test_start_validates_and_needs_an_open_campaign(issued, customer_client, role_client):
    client = customer_client(NEW_ACCOUNT)
    bad = start(client, "02-123-4567")
    assert bad.status_code == 400 and "02-123-4567" not in bad.content.decode()
    assert start(client, campaign="nope").status_code == 404
    issued.eligibility_opens_at = timezone.now() + dt.timedelta(days=1)
    issued.save()
    default_cache.delete(cache.campaign_key("breach"))
    assert start(client).json()["code"] == "eligibility_not_open"
    assert start(role_client("support")).status_code == 403


def test_claims_drop_the_cached_answers(issued, customer_client, sms_dir,
                                        django_capture_on_commit_callbacks):
    default_cache.clear()  # the issuance's fences expired
    eligibility = "/api/v1/campaigns/breach/eligibility"
    claimant, closed = customer_client(NEW_ACCOUNT), customer_client(CLOSED_A)
    assert claimant.get(eligibility).json()["status"] == "not_eligible"
    assert closed.get(eligibility).json()["status"] == "claimable"
    challenge_id, code = start_and_receive(claimant, sms_dir)
    with django_capture_on_commit_callbacks(execute=True):
        claimant.post(confirm_url(challenge_id), {"code": code}, format="json")
    mine = claimant.get(eligibility).json()
    assert (mine["eligible"], mine["status"], mine["account_status"]) == (True, "claimed", None)
    assert mine["amount_krw"] == 100_000 and len(mine["vouchers"]) == 4
    theirs = closed.get(eligibility).json()
    assert (theirs["status"], theirs["vouchers"]) == ("claimed", [])
    assert len(customer_client(NEW_ACCOUNT).get("/api/v1/me/vouchers").json()["results"]) == 4


def test_the_closed_accounts_own_id_may_claim_for_itself(issued, customer_client, sms_dir):
    client = customer_client(CLOSED_B)
    challenge_id, code = start_and_receive(client, sms_dir, PHONE_B)
    assert client.post(confirm_url(challenge_id), {"code": code},
                       format="json").status_code == 200
    body = client.get("/api/v1/campaigns/breach/eligibility").json()
    assert body["status"] == "claimed"
    assert {v["status"] for v in body["vouchers"]} == {"active"}


def _limit(settings, scope: str, rate: str) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], scope: rate}}


# Each case: three starts (customer, phone, client address); only the named key repeats.
_THROTTLE_CASES = {
    "claim_phone": [(1, PHONE_A, "192.0.2.1"), (2, "+82-10-1234-5678", "192.0.2.2"),
                    (3, "01012345678", "192.0.2.3")],
    "claim_customer": [(1, PHONE_A, "192.0.2.1"), (1, PHONE_B, "192.0.2.2"),
                       (1, PHONE_UNKNOWN, "192.0.2.3")],
    "claim_ip": [(1, PHONE_A, "192.0.2.1"), (2, PHONE_B, "192.0.2.1"),
                 (3, PHONE_UNKNOWN, "192.0.2.1")],
}


@pytest.mark.parametrize("scope", sorted(_THROTTLE_CASES))
def test_start_is_limited_per_phone_customer_and_address(issued, customer_client, settings,
                                                         scope):
    _limit(settings, scope, "2/hour")
    statuses = []
    for customer_id, phone, address in _THROTTLE_CASES[scope]:
        response = customer_client(customer_id).post(
            START, {"campaign": "breach", "phone": phone}, format="json", REMOTE_ADDR=address)
        statuses.append(response.status_code)
    assert statuses == [202, 202, 429]
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 3600


def test_rejoined_moves_vouchers_and_answers_the_same_either_way(issued, role_client):
    identity = role_client("identity")
    url = "/api/v1/accounts/rejoined"
    matched = identity.post(url, {"customer_id": NEW_ACCOUNT, "phone": PHONE_B}, format="json")
    unmatched = identity.post(url, {"customer_id": STRANGER, "phone": PHONE_UNKNOWN},
                              format="json")
    assert matched.status_code == unmatched.status_code == 202
    assert matched.json() == unmatched.json() == {"status": "accepted"}
    moved = Voucher.objects.filter(registry_customer_id=CLOSED_B)
    assert {(v.customer_id, v.status) for v in moved} == {(NEW_ACCOUNT, "active")}
    assert Claim.objects.get(registry_customer_id=CLOSED_B).via == "rejoined"
    assert AuditEvent.objects.filter(action="claim.rejoined").count() == 2
    assert verify_ledger(campaign_id=issued.pk).ok
    again = identity.post(url, {"customer_id": NEW_ACCOUNT, "phone": PHONE_B}, format="json")
    assert again.status_code == 202
    assert LedgerTransaction.objects.filter(reason="claim_transfer").count() == 2


def test_rejoined_is_for_the_identity_service_only(issued, role_client, customer_client):
    body = {"customer_id": NEW_ACCOUNT, "phone": PHONE_B}
    url = "/api/v1/accounts/rejoined"
    assert role_client("support").post(url, body, format="json").status_code == 403
    assert customer_client(NEW_ACCOUNT).post(url, body, format="json").status_code == 403
    assert role_client("identity").post(url, {"customer_id": "9", "phone": PHONE_B},
                                        format="json").status_code == 400


_DIGITS = ("01012345678", "1012345678", "010-1234-5678", "+82 10 1234 5678")


def test_no_raw_phone_anywhere_in_the_database_after_claims(issued, customer_client, sms_dir,
                                                            role_client):
    client = customer_client(NEW_ACCOUNT)
    challenge_id, code = start_and_receive(client, sms_dir)
    client.post(confirm_url(challenge_id), {"code": code}, format="json")
    start(customer_client(STRANGER), PHONE_UNKNOWN)
    role_client("identity").post("/api/v1/accounts/rejoined",
                                 {"customer_id": 9003, "phone": PHONE_B}, format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [t for (t,) in cursor.fetchall()]
        needles = [*_DIGITS, "01055550000", "01098765432", "1098765432"]
        needles += [n.encode().hex() for n in needles]
        for table in tables:
            for needle in needles:
                cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s',
                               [f"%{needle}%"])
                assert cursor.fetchone()[0] == 0, (table, needle)


def test_the_sweep_sends_what_a_lost_task_message_left(issued, customer_client, sms_dir):
    start(customer_client(NEW_ACCOUNT))
    assert tasks.sweep_claim_outbox() == 0  # too fresh: its own task message will come
    ClaimChallenge.objects.update(created_at=timezone.now() - dt.timedelta(seconds=40))
    assert tasks.sweep_claim_outbox() == 1
    assert len(messages(sms_dir)) == 1
    assert tasks.deliver_claim_code(str(ClaimChallenge.objects.get().pk)) is False  # taken


def test_a_failed_send_is_logged_without_the_number(issued, customer_client, settings, caplog):
    settings.SMS_BACKEND = "http"
    settings.SMS_HTTP_URL = f"http://127.0.0.1:{free_port()}/sms"
    settings.SMS_HTTP_RETRIES = 0
    start(customer_client(NEW_ACCOUNT))
    assert deliver_outbox() == 0
    assert "claim code SMS failed" in caplog.text
    assert "12345678" not in caplog.text
