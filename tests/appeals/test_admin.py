"""The appeals queue in the admin: status and campaign filters with counts, dates, and
nothing to change."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from tests.appeals.conftest import decide_url, file
from vouchers.appeals.models import Appeal

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/appeals/appeal/"


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    return client


def test_the_changelist_filters_and_counts(campaign, make_campaign, customer_client, ops,
                                           admin_client):
    make_campaign(slug="second")
    ids = [file(customer_client(customer_id)).json()["id"] for customer_id in (701, 702, 703)]
    file(customer_client(701), slug="second")
    ops.post(decide_url(ids[0], "reject"), {"reason": "Not affected."}, format="json")
    page = admin_client.get(CHANGELIST).content.decode()
    # Facet counts beside each filter choice.
    assert re.search(r"Open\s*\(3\)", page) and re.search(r"Rejected\s*\(1\)", page)
    assert re.search(r"breach\s*\(3\)", page) and re.search(r"second\s*\(1\)", page)
    assert "created_at__year=" in page  # the date hierarchy
    open_only = admin_client.get(CHANGELIST, {"status__exact": "open"}).content.decode()
    assert ids[1] in open_only and ids[2] in open_only and ids[0] not in open_only


def test_appeals_are_read_only_in_the_admin(campaign, customer_client, admin_client):
    appeal_id = file(customer_client(701)).json()["id"]
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    change = admin_client.post(f"{CHANGELIST}{appeal_id}/change/",
                               {"status": "accepted", "account_status": "active"})
    assert change.status_code == 403
    assert admin_client.post(f"{CHANGELIST}{appeal_id}/delete/",
                             {"post": "yes"}).status_code == 403
    assert Appeal.objects.get().status == "open"
