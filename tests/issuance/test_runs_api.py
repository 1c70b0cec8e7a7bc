"""The issuance run API: creation, four-eyes approval, every transition, dry runs."""

from __future__ import annotations

import itertools

import pytest

from tests.issuance.conftest import ELIGIBLE, drive
from voucher_service.models import AuditEvent
from vouchers.issuance.models import IssuanceChunk, IssuanceRun
from vouchers.models import Voucher

pytestmark = pytest.mark.django_db

API_FIELDS = {
    "id", "campaign", "status", "dry_run", "created_by", "approved_by", "eligible_customers",
    "vouchers_issued", "customers_done", "progress", "started_at", "finished_at", "eta_seconds",
}


def _create(client, slug="breach", dry_run=False):
    return client.post(f"/api/v1/campaigns/{slug}/issuance-runs", {"dry_run": dry_run},
                       format="json")


def _act(client, run_id, action):
    return client.post(f"/api/v1/issuance-runs/{run_id}/{action}")


def test_create_plans_chunks_and_waits_for_approval(campaign, ops):
    response = _create(ops)
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= API_FIELDS
    assert body["status"] == "pending_approval"
    assert body["campaign"] == "breach"
    assert body["eligible_customers"] == ELIGIBLE
    assert body["created_by"] == ops.principal.audit_name
    assert (body["vouchers_issued"], body["customers_done"], body["progress"]) == (0, 0, 0.0)
    chunks = list(IssuanceChunk.objects.filter(run_id=body["id"]).order_by("lo"))
    assert [c.customers for c in chunks] == [10, 10, 10, 10, 10, 8]
    assert all(a.hi == b.lo for a, b in itertools.pairwise(chunks))
    assert chunks[0].lo == 1 and chunks[-1].hi == 61
    assert AuditEvent.objects.filter(action="issuance_run.created", target_id=body["id"]).exists()


def test_creator_cannot_approve(campaign, ops):
    run_id = _create(ops).json()["id"]
    response = _act(ops, run_id, "approve")
    assert response.status_code == 403
    assert response.json()["code"] == "same_principal"
    assert IssuanceRun.objects.get(pk=run_id).status == "pending_approval"


def test_second_operator_approves(campaign, ops, ops2):
    run_id = _create(ops).json()["id"]
    response = _act(ops2, run_id, "approve")
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    assert response.json()["approved_by"] == ops2.principal.audit_name
    event = AuditEvent.objects.get(action="issuance_run.approve", target_id=run_id)
    assert event.actor == ops2.principal.audit_name
    assert event.payload["from"] == "pending_approval" and event.payload["to"] == "queued"


@pytest.mark.parametrize("role", ["finance", "support", "checkout"])
def test_other_roles_may_not_create(campaign, role_client, role):
    assert _create(role_client(role)).status_code == 403


def test_unknown_campaign_and_run(campaign, ops):
    assert _create(ops, slug="nope").json()["code"] == "campaign_not_found"
    missing = "00000000-0000-0000-0000-000000000000"
    assert ops.get(f"/api/v1/issuance-runs/{missing}").status_code == 404
    assert _act(ops, missing, "pause").status_code == 404


def test_dry_run_counts_and_issues_nothing(campaign, ops):
    response = _create(ops, dry_run=True)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "completed" and body["dry_run"] is True
    assert body["vouchers_issued"] == 0 and body["progress"] == 1.0
    assert body["eligible_customers"] == ELIGIBLE
    assert body["dry_run_vouchers"] == ELIGIBLE * 4
    assert body["dry_run_total_krw"] == ELIGIBLE * 50_000
    assert not Voucher.objects.exists()
    assert not IssuanceChunk.objects.filter(run_id=body["id"]).exists()
    assert _act(ops, body["id"], "cancel").json()["code"] == "invalid_transition"


def test_full_lifecycle(approved_run, ops):
    assert _act(ops, approved_run, "resume").status_code == 409  # queued, not paused
    paused = _act(ops, approved_run, "pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert _act(ops, approved_run, "pause").json()["code"] == "invalid_transition"
    resumed = _act(ops, approved_run, "resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    run = drive(approved_run)
    assert run.status == "completed"
    body = ops.get(f"/api/v1/issuance-runs/{approved_run}").json()
    assert body["progress"] == 1.0 and body["eta_seconds"] == 0
    assert body["vouchers_issued"] == ELIGIBLE * 4 and body["customers_done"] == ELIGIBLE
    for action in ("approve", "pause", "resume", "cancel"):
        response = _act(ops, approved_run, action)
        assert response.status_code == 409, action
        assert response.json()["code"] == "invalid_transition"
    actions = list(AuditEvent.objects.filter(target_id=approved_run).order_by("id")
                   .values_list("action", flat=True))
    assert actions == ["issuance_run.created", "issuance_run.approve", "issuance_run.pause",
                       "issuance_run.resume", "issuance_run.completed"]


def test_cancel_from_pending_approval(campaign, ops):
    run_id = _create(ops).json()["id"]
    response = _act(ops, run_id, "cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    assert _act(ops, run_id, "approve").json()["code"] == "invalid_transition"


def test_list_runs_of_campaign(campaign, ops):
    ids = [_create(ops).json()["id"] for _ in range(3)]
    body = ops.get("/api/v1/campaigns/breach/issuance-runs").json()
    assert [r["id"] for r in body["results"]] == ids[::-1]
    assert body["next"] is None
