"""The issue_vouchers command and the admin's progress bar."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from tests.issuance.conftest import drive
from vouchers.issuance.models import IssuanceRun

pytestmark = pytest.mark.django_db


def test_issue_vouchers_self_approves_in_development(campaign, settings):
    settings.ALLOW_SELF_APPROVAL = True
    out = io.StringIO()
    call_command("issue_vouchers", "--campaign", campaign.slug, stdout=out)
    run_id = out.getvalue().strip().splitlines()[-1]
    run = IssuanceRun.objects.get(pk=run_id)
    assert run.status == "queued" and run.approved_by == run.created_by


def test_issue_vouchers_refuses_without_self_approval(campaign, settings):
    settings.ALLOW_SELF_APPROVAL = False
    with pytest.raises(CommandError, match="ALLOW_SELF_APPROVAL"):
        call_command("issue_vouchers", "--campaign", campaign.slug)
    assert not IssuanceRun.objects.exists()


def test_admin_shows_progress_bar(campaign, approved_run, client):
    drive(approved_run, max_chunks=3)
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    listing = client.get("/admin/issuance/issuancerun/")
    assert listing.status_code == 200
    assert b"<progress" in listing.content
    detail = client.get(f"/admin/issuance/issuancerun/{approved_run}/change/")
    assert detail.status_code == 200
    assert b"30 customers, 120 vouchers" in detail.content
