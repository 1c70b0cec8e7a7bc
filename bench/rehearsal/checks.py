"""The invariants every phase ends with, read from the database as it is.

Before any voucher exists: the registry holds the file's customers (and the late ones or
none of them), the ledger verifies, the audit chain holds. Once issued: vouchers are
four per registry customer (revoked customers keep theirs, revoked), no customer holds
two of a component, reconciliation (registry against vouchers, balances against the
ledger, the ledger's own checks, the audit chain) passes, and the finance summary's
identity holds with every won of the campaign issued.

These scan the big tables (by design: nothing here may trust what it checks); at 33.7M
customers they take minutes, timed apart from the phase. The rehearsal runs no Celery beat:
the audit trail is sealed first, as the beat's sealer would have done meanwhile.
"""

from __future__ import annotations

import time

from django.db import connection

from voucher_service.audit import verify_audit_chain
from voucher_service.sealing import seal_events
from vouchers.finance.selectors import campaign_summary
from vouchers.finance.services import reconcile
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Campaign

from .population import COMPONENTS, PER_CUSTOMER_KRW, Population
from .report import Check

ACTOR = "rehearsal"

_DUPLICATES = """
SELECT count(*) FROM (
    SELECT 1 FROM vouchers_voucher WHERE campaign_id = %s
    GROUP BY registry_customer_id, component_id HAVING count(*) > 1
) twice
"""


def scalar(sql: str, params: list | tuple = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0] or 0)


def registry_counts(campaign: Campaign, population: Population) -> tuple[int, int]:
    """(customers of the file, late additions) in the campaign's registry."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE NOT {population.late_sql('customer_id')}), "
            f"count(*) FILTER (WHERE {population.late_sql('customer_id')}) "
            "FROM vouchers_registryentry WHERE campaign_id = %s", [campaign.pk])
        file_rows, late_rows = cursor.fetchone()
    return file_rows, late_rows


def identity(summary: dict) -> int:
    """The right-hand side of the summary's identity (API.md, Finance)."""
    return (summary["redeemed_krw"] - summary["refunded_krw"] + summary["authorized_krw"]
            + summary["forfeited_krw"] + summary["expired_krw"] + summary["revoked_krw"]
            + summary["outstanding_krw"])


def invariants(campaign: Campaign, population: Population) -> tuple[list[Check], float]:
    started = time.perf_counter()
    seal_events()
    file_rows, late_rows = registry_counts(campaign, population)
    registry = file_rows + late_rows
    checks = [
        Check("registry holds the file's customers", population.customers, file_rows),
        Check("registry late additions: none or all", f"0 or {population.additions:,}",
              late_rows, ok=late_rows in (0, population.additions)),
    ]
    vouchers = scalar("SELECT count(*) FROM vouchers_voucher WHERE campaign_id = %s",
                      [campaign.pk])
    if vouchers == 0:
        ledger = verify_ledger(campaign_id=campaign.pk)
        chain = verify_audit_chain()
        checks += [
            Check("verify_ledger", "ok", "ok" if ledger.ok else "FAILED",
                  detail=[c.name for c in ledger.checks if not c.ok]),
            Check("audit chain", "intact", "intact" if chain.ok else str(chain.first_break),
                  detail={"events": chain.events_checked}),
        ]
        return checks, time.perf_counter() - started
    report = reconcile(campaign=campaign, actor=ACTOR)
    failed = [c["name"] for c in report.checks if not c["ok"]]
    summary = campaign_summary(campaign)
    checks += [
        Check(f"vouchers == {len(COMPONENTS)} x registry customers",
              len(COMPONENTS) * registry, vouchers),
        Check("customers holding two vouchers of a component", 0,
              scalar(_DUPLICATES, [campaign.pk])),
        Check("reconcile (ledger, balances, registry, audit chain)", "ok",
              "ok" if report.ok else "FAILED: " + ", ".join(failed),
              detail=[{k: v for k, v in c.items() if k != "mismatches"}
                      for c in report.checks]),
        Check("finance identity: issued == redeemed - refunded + ... + outstanding",
              summary["issued_krw"], identity(summary)),
        Check(f"issued won == {PER_CUSTOMER_KRW:,} x registry customers",
              PER_CUSTOMER_KRW * registry, summary["issued_krw"]),
        Check("summary's issued count == vouchers", vouchers, summary["issued_count"]),
    ]
    return checks, time.perf_counter() - started
