"""Reconciliation: the registry, the vouchers, the ledger and the audit chain agree."""

from __future__ import annotations

from typing import Any

from django.db import connection

from voucher_service.audit import verify_audit_chain
from vouchers.eligibility.registered import REGISTRY_ROW_REGISTERED, exclusion_in_force
from vouchers.finance.models import ReconciliationReport
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Campaign
from vouchers.models.expiry import swept


def _scalar(sql: str, params: dict[str, Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0] or 0)


_OWED_VOUCHERS_TEMPLATE = """
    SELECT coalesce(sum(n.components), 0) FROM vouchers_registryentry r
    JOIN (SELECT campaign_id, count(*) AS components FROM vouchers_component GROUP BY 1) n
      ON n.campaign_id = r.campaign_id
    WHERE (%(campaign_id)s::bigint IS NULL OR r.campaign_id = %(campaign_id)s)
      AND {registered}
"""
_ISSUED_TO_OWED_TEMPLATE = """
    SELECT count(*) FROM vouchers_voucher v
    WHERE (%(campaign_id)s::bigint IS NULL OR v.campaign_id = %(campaign_id)s)
      AND NOT {excluded}
"""
_OWED_VOUCHERS = _OWED_VOUCHERS_TEMPLATE.format(registered=REGISTRY_ROW_REGISTERED)
_ISSUED_TO_OWED = _ISSUED_TO_OWED_TEMPLATE.format(
    excluded=exclusion_in_force(campaign="v.campaign_id", customer="v.registry_customer_id"))
_LEDGER_OUTSTANDING = """
    SELECT -coalesce(sum(balance_krw), 0) FROM vouchers_ledgerbalance
    WHERE account IN ('liability', 'unclaimed')
      AND (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
"""
# What the vouchers hold for their customers: an expired voucher keeps its leftover on its
# row once a sweep has booked it to `expired`.
_VOUCHER_BALANCES = f"""
    SELECT coalesce(sum(balance_krw), 0) FROM vouchers_voucher
    WHERE (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
      AND NOT {swept()}
"""  # noqa: S608  # nosec B608
_LEDGER_SUM = """
    SELECT coalesce(sum(amount_krw), 0) FROM vouchers_ledgerposting
    WHERE (%(campaign_id)s::bigint IS NULL OR campaign_id = %(campaign_id)s)
"""


def _check(name: str, expected: Any, actual: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ok": expected == actual, "expected": expected, "actual": actual,
            **extra}


def reconcile(*, campaign: Campaign | None, actor: str) -> ReconciliationReport:
    """Runs every check (set-based scans), stores and returns the report."""
    params = {"campaign_id": campaign.pk if campaign else None}
    checks = [
        _check("registry_vs_issued_vouchers",
               _scalar(_OWED_VOUCHERS, params), _scalar(_ISSUED_TO_OWED, params)),
        _check("voucher_balances_vs_ledger",
               _scalar(_LEDGER_OUTSTANDING, params), _scalar(_VOUCHER_BALANCES, params)),
        _check("ledger_sums_to_zero", 0, _scalar(_LEDGER_SUM, params)),
    ]
    for check in verify_ledger(campaign_id=params["campaign_id"]).checks:
        checks.append(_check(check.name, check.expected, check.actual,
                             mismatches=check.mismatches[:20]))
    chain = verify_audit_chain()
    checks.append(_check(
        "audit_chain_intact", "intact",
        "intact" if chain.ok else f"broken at event {chain.first_break.event_id}",
        events_checked=chain.events_checked,
    ))
    return ReconciliationReport.objects.create(
        campaign=campaign, created_by=actor, ok=all(c["ok"] for c in checks), checks=checks
    )
