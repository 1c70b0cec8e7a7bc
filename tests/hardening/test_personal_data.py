"""No raw phone number, in any format, in the database, the logs or the exports.

Drives every path that sees a phone (registry import with an invalid row, closed-account
claims with the console SMS backend, re-joins) plus issuance, checkout and the finance
export and support lookup, then scans every text, JSON and binary column of every table,
everything logged and printed, and the export.
"""

from __future__ import annotations

import logging
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.issuance.conftest import drive
from vouchers.eligibility.tasks import deliver_claim_code
from vouchers.identifiers import public_voucher_id
from vouchers.issuance import services as issuance
from vouchers.models import Voucher

# National significant numbers (no leading 0 or +82): what survives any formatting.
PHONES = {
    "010-4821-7733": "1048217733",
    "+82 10 5932 1177": "1059321177",
    "01133345567": "1133345567",  # an old 011 number, 7-digit subscriber part
    "010.9090.1212": "1090901212",  # on a row that fails validation (bad status)
}
REJOIN_PHONE, REJOIN_NSN = "010-7070-3131", "1070703131"
ALL_NSNS = [*PHONES.values(), REJOIN_NSN]
REGISTRY = (
    "customer_id,account_status,account_closed_at,phone\n"
    "1,active,,010-4821-7733\n"
    "2,closed,2025-12-01T10:00:00+09:00,+82 10 5932 1177\n"
    "3,closed,2025-12-02T10:00:00+09:00,01133345567\n"
    "4,sleeping,,010.9090.1212\n"
    "5,closed,2025-12-03T10:00:00+09:00,010-7070-3131\n"
)


def leaks(text: str) -> list[str]:
    digits = re.sub(r"\D", "", text)
    return [nsn for nsn in ALL_NSNS if nsn in digits]


def scan_database() -> dict[str, list[str]]:
    """``table.column`` -> the phones found in it (digits of any formatting)."""
    found = {}
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT table_name, column_name, data_type FROM information_schema.columns
            WHERE table_schema = 'public'
              AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')
        """)
        for table, column, data_type in cursor.fetchall():
            as_text = (f"encode({column}, 'escape')" if data_type == "bytea"
                       else f"{column}::text")
            cursor.execute(
                f"SELECT string_agg(regexp_replace({as_text}, '[^0-9]', '', 'g'), ' ') "
                f"FROM {table}")
            digits = cursor.fetchone()[0] or ""
            if hits := [nsn for nsn in ALL_NSNS if nsn in digits]:
                found[f"{table}.{column}"] = hits
    return found


@pytest.mark.django_db
def test_no_raw_phone_anywhere(tmp_path, settings, caplog, capsys, make_campaign,
                               role_client, customer_client):
    settings.SMS_BACKEND = "console"
    caplog.set_level(logging.DEBUG)
    campaign = make_campaign(slug="pii")
    registry = tmp_path / "registry.csv"
    registry.write_text(REGISTRY)

    with pytest.raises(CommandError):  # the bad row stops the whole file
        call_command("import_eligibility", "--campaign", "pii", str(registry))
    call_command("import_eligibility", "--campaign", "pii", "--skip-invalid", str(registry))
    run = issuance.create_run(campaign=campaign, actor="ops-a", dry_run_only=False)
    issuance.approve_run(run_id=run.pk, actor="ops-b")
    assert drive(run.pk).status == "completed"

    claimant = customer_client(9001)
    started = claimant.post("/api/v1/claims/closed-account",
                            {"campaign": "pii", "phone": "+82 10 5932 1177"}, format="json")
    assert started.status_code == 202
    assert deliver_claim_code(started.json()["challenge_id"])  # the worker's part, here
    rejoined = role_client("identity").post(
        "/api/v1/accounts/rejoined", {"customer_id": 9002, "phone": REJOIN_PHONE},
        format="json")
    assert rejoined.status_code == 202

    voucher = Voucher.objects.get(campaign=campaign, customer_id=1)
    checkout = role_client("checkout")
    assert checkout.post("/api/v1/redemptions", {
        "voucher_id": public_voucher_id(voucher.pk), "customer_id": 1, "order_id": "o-1",
        "amount_krw": 1_000, "order_total_krw": 10_000, "merchant_category": "eats",
        "capture": True}, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    export = role_client("finance").get("/api/v1/finance/redemptions/export",
                                         {"campaign": "pii"})
    exported = b"".join(export.streaming_content).decode()
    support = role_client("support").get("/api/v1/support/customers/2").content.decode()

    assert scan_database() == {}
    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    printed = "".join(capsys.readouterr())
    assert leaks(logged) == [] and leaks(printed) == []
    assert leaks(exported) == [] and leaks(support) == []
    assert Voucher.objects.filter(customer_id=9002).exists()  # the re-join did run
