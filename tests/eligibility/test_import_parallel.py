"""The import's slices on several connections at once (real threads, real connections,
committed transactions): every line typed and loaded once, duplicates found across
slices, a failure in one slice raised, and a lease taken over stopping them all."""

from __future__ import annotations

import io
import threading
import uuid

import pytest
from django.conf import settings
from django.db import connection

from voucher_service.phones import phone_hash
from voucher_service.problems import ProblemError
from vouchers.eligibility import importing
from vouchers.eligibility.importing import import_registry
from vouchers.eligibility.models import RegistryImportLease
from vouchers.models import RegistryEntry

pytestmark = pytest.mark.django_db(transaction=True)
HEADER = "customer_id,account_status,account_closed_at,phone"
LINES = 6000


@pytest.fixture
def campaign(make_campaign):
    return make_campaign(slug="parallel")


@pytest.fixture(autouse=True)
def two_connections(settings, monkeypatch):
    settings.REGISTRY_IMPORT_CONNECTIONS = 2
    monkeypatch.setattr(importing, "BATCH_PAGES", 4)


def source(lines: list[str]) -> io.BytesIO:
    return io.BytesIO(("\n".join([HEADER, *lines]) + "\n").encode())


def line(cid: int) -> str:
    if cid % 7 == 0:
        return f"{cid},closed,2025-11-30 10:00,010-{cid // 10_000:04d}-{cid % 10_000:04d}"
    return f"{cid},active,,+82 10 {cid // 10_000:04d} {cid % 10_000:04d}"


def test_every_line_is_typed_and_loaded_once_across_slices(campaign):
    lines = [line(cid) for cid in range(1, LINES + 1)]
    # The first and the last line share an id: one slice each, both refused. A bad phone
    # in each half.
    lines[-1] = "1,active,,"
    lines[1000] = "1001,active,,010-12"
    lines[5000] = "5001,active,,999"
    result = import_registry(campaign=campaign, source=source(lines), actor="test",
                             skip_invalid=True)
    assert (result.rows, result.invalid, result.inserted) == (LINES, 4, LINES - 4)
    assert [str(p) for p in result.problems] == [
        "line 2: customer_id appears on more than one line of the file",
        "line 1002: phone is not a Korean mobile number",
        "line 5002: phone is not a Korean mobile number",
        f"line {LINES + 1}: customer_id appears on more than one line of the file",
    ]
    stored = dict(RegistryEntry.objects.filter(campaign=campaign)
                  .values_list("customer_id", "phone_hash"))
    assert sorted(stored) == [cid for cid in range(2, LINES) if cid not in (1001, 5001)]
    for cid in (7, 2996, 5999):  # closed: the phone's keyed hash
        phone = line(cid).split(",")[3]
        assert bytes(stored[cid]) == phone_hash(phone, key=settings.PHONE_HASH_KEY)
    assert stored[2] is None and stored[3000] is None  # active: checked, not kept
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s), to_regclass(%s)",
                       [f"registry_import_raw_{campaign.pk}",
                        f"registry_import_rows_{campaign.pk}"])
        assert cursor.fetchone() == (None, None)


def test_slices_run_on_their_own_connections_and_a_failure_is_raised(campaign):
    lease = importing._Lease(campaign=campaign, holder=uuid.uuid4())
    seen: list[tuple[str, int]] = []

    def work(item: int) -> tuple[str, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.05)")
        return threading.current_thread().name, id(connection.connection)

    lease.in_slices(work, range(8), seen.append)
    assert len(seen) == 8
    assert len({name for name, _ in seen}) == 2 and len({conn for _, conn in seen}) == 2

    def fails_on_three(item: int) -> int:
        if item == 3:
            raise ValueError("slice three")
        return item

    done: list[int] = []
    with pytest.raises(ValueError, match="slice three"):
        lease.in_slices(fails_on_three, range(50), done.append)
    assert 3 not in done and len(done) < 50


def test_a_lease_taken_over_stops_every_slice(campaign):
    """Another import takes the lease over after the first batch commits: the batches
    still running or not yet started write nothing, the import fails, and the typed rows
    (the new holder's now) stay."""
    successor = uuid.uuid4()

    def take_over(stage, done, total):
        if stage == "load":
            RegistryImportLease.objects.filter(campaign=campaign).update(holder=successor)

    with pytest.raises(ProblemError) as caught:
        import_registry(campaign=campaign, source=source([line(c) for c in range(1, LINES)]),
                        actor="test", progress=take_over)
    assert caught.value.code == "import_in_progress"
    loaded = RegistryEntry.objects.filter(campaign=campaign).count()
    assert 0 < loaded < LINES // 2
    assert RegistryImportLease.objects.get(campaign=campaign).holder == successor
    with connection.cursor() as cursor:  # the successor's, which no import will drop here
        cursor.execute(f"DROP TABLE IF EXISTS registry_import_raw_{campaign.pk}, "
                       f"registry_import_rows_{campaign.pk}")


def test_the_lease_is_renewed_while_slices_run(campaign, monkeypatch):
    """The main thread renews the lease every RENEW_SECONDS while the slices' transactions
    are open: a slice holding the lease's row locked for its whole transaction would keep
    every renewal waiting until the last slice ends, and the lease of a long import would
    go stale under it."""
    monkeypatch.setattr(importing, "RENEW_SECONDS", 0.1)
    seen: list = []

    def slow_slice(item: int):
        with lease.slice_transaction() as cursor:
            cursor.execute("SELECT renewed_at FROM eligibility_registryimportlease "
                           "WHERE campaign_id = %s", [campaign.pk])
            renewed_at = cursor.fetchone()[0]
            # The first slice is shorter: the two threads' transactions overlap throughout.
            cursor.execute("SELECT pg_sleep(%s)", [0.15 if item == 0 else 0.3])
        return renewed_at

    with importing._campaign_lease(campaign) as lease:
        lease.in_slices(slow_slice, range(8), seen.append)
    assert len(seen) == 8
    assert len(set(seen)) >= 3, seen


def test_a_first_import_falls_back_to_the_upsert_when_a_customer_appears_meanwhile(campaign):
    """Into an empty registry the batches insert plainly; a customer another writer adds
    while they run (an accepted appeal, say) breaks a later batch's plain INSERT, which
    then upserts: the import succeeds and counts that customer as updated."""
    late = LINES - 10

    def appeal_accepted(stage, done, total):
        if stage == "load" and not added:
            added.append(RegistryEntry.objects.create(
                campaign=campaign, customer_id=late, account_status="dormant",
                imported_at=campaign.created_at))

    added: list = []
    result = import_registry(campaign=campaign, source=source([line(c) for c in range(1, LINES)]),
                             actor="test", progress=appeal_accepted)
    assert added
    assert (result.inserted, result.updated, result.registry_rows) == (LINES - 2, 1, LINES - 1)
    assert RegistryEntry.objects.get(campaign=campaign, customer_id=late).account_status \
        == "active"
