"""Shared fixtures: principals with real tokens, customer JWTs, campaigns and registries."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.identity import mint_customer_token
from accounts.services import create_principal
from vouchers.models import Campaign, Component, RegistryEntry

_names = itertools.count(1)


def pytest_addoption(parser):
    parser.addoption(
        "--through-pgbouncer", action="store_true",
        help="talk to the test database through PgBouncer in transaction pooling mode, as "
             "deployed (make test-topology): every connection of the tests and of the "
             "processes they start")


def pytest_collection_modifyitems(config, items):
    """Through PgBouncer every database test runs as the service does, transaction by
    transaction: a test wrapped whole in one transaction would keep one server connection
    from start to end and hide any session state that transaction pooling breaks."""
    if not config.getoption("--through-pgbouncer"):
        return
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and not marker.kwargs.get("transaction"):
            item.add_marker(pytest.mark.django_db(*marker.args, **{
                **marker.kwargs, "transaction": True}), append=False)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, request):
    """pytest-django's test database; with ``--through-pgbouncer``, once it is created and
    migrated, every connection goes through a PgBouncer of the session's own, in front of
    the same server, until the database is dropped."""
    if not request.config.getoption("--through-pgbouncer"):
        yield
        return
    from tests.processes import PgBouncer

    database = connections["default"].settings_dict
    direct = database["HOST"], database["PORT"]
    bouncer = PgBouncer((direct[0] or "127.0.0.1", int(direct[1] or 5432)))
    connections.close_all()
    database["HOST"], database["PORT"] = "127.0.0.1", str(bouncer.port)
    yield
    connections.close_all()
    database["HOST"], database["PORT"] = direct
    bouncer.stop()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle histories and cached answers of one test never leak into the next. ``make
    test`` gives the suite Redis databases of its own (see the Makefile)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_principal(db):
    def make(role: str, name: str | None = None) -> tuple[object, str]:
        return create_principal(role=role, name=name or f"{role}-{next(_names)}")

    return make


@pytest.fixture
def client_for():
    """``client_for(token)``: an API client sending ``Authorization: Bearer <token>``."""

    def make(token: str | None = None) -> APIClient:
        client = APIClient()
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def role_client(make_principal, client_for):
    """``role_client("operations")``: a client authenticated as a new principal of that role."""

    def make(role: str) -> APIClient:
        principal, token = make_principal(role)
        client = client_for(token)
        client.principal = principal
        return client

    return make


@pytest.fixture
def customer_client(client_for):
    def make(customer_id: int) -> APIClient:
        return client_for(mint_customer_token(customer_id))

    return make


@pytest.fixture
def make_campaign(db):
    def make(
        slug: str = "breach-2026",
        components: list[dict] | None = None,
        opens_at: dt.datetime | None = None,
    ) -> Campaign:
        campaign = Campaign.objects.create(
            slug=slug,
            name=f"Campaign {slug}",
            eligibility_opens_at=opens_at or timezone.now() - dt.timedelta(days=1),
            created_by="test",
        )
        expires = timezone.now() + dt.timedelta(days=90)
        for spec in components or [{"category": "all", "amount_krw": 50_000}]:
            Component.objects.create(campaign=campaign, **{"expires_at": expires, **spec})
        return campaign

    return make


@pytest.fixture
def load_registry(db):
    """``load_registry(campaign, {customer_id: "active" | "dormant" | "closed", ...})``."""

    def load(campaign: Campaign, statuses: dict[int, str]) -> None:
        now = timezone.now()
        RegistryEntry.objects.bulk_create(
            RegistryEntry(
                campaign=campaign,
                customer_id=cid,
                account_status=status,
                account_closed_at=now if status == "closed" else None,
                imported_at=now,
            )
            for cid, status in statuses.items()
        )

    return load


@pytest.fixture
def private_redis():
    """A redis-server of our own on a free port (``.url(db)``, ``.kill()``, ``.start()``),
    for tests that take Redis away; killed at teardown."""
    from tests.processes import PrivateRedis

    server = PrivateRedis()
    yield server
    server.kill()


@pytest.fixture
def cluster():
    """A private PostgreSQL cluster that a test may stop and start; destroyed at teardown."""
    from tests.processes import PrivateCluster

    private = PrivateCluster()
    yield private
    private.destroy()
