"""The registry import: typing and hashing in SQL, all-or-nothing, idempotent, additive."""

from __future__ import annotations

import datetime as dt
import io
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from voucher_service.models import AuditEvent
from voucher_service.phones import phone_hash
from voucher_service.problems import ProblemError
from vouchers.eligibility import importing
from vouchers.eligibility.cache import FENCE, answer_key
from vouchers.eligibility.importing import LEASE_SECONDS, RegistryFileRejected, import_registry
from vouchers.eligibility.models import RegistryImportLease
from vouchers.issuance.chunk import issue_chunk
from vouchers.models import RegistryEntry, Voucher

pytestmark = pytest.mark.django_db
HEADER = "customer_id,account_status,account_closed_at,phone"
SEOUL = dt.timezone(dt.timedelta(hours=9))
GOOD = [
    "1,active,,010-1234-5678",
    "2,dormant,,+82 10 2345 6789",
    "3,closed,2025-11-30,(010) 3456-7890",
    "4,CLOSED ,2025-12-01T10:30:00Z,011-345-6789",
    "5,active,,",
    "6,closed,2025-12-02 08:00,",
]


def csv_bytes(*lines: str, header: str = HEADER) -> io.BytesIO:
    return io.BytesIO(("\n".join([header, *lines]) + "\n").encode())


def load(campaign, *lines: str, skip_invalid: bool = False, **kwargs):
    return import_registry(campaign=campaign, source=csv_bytes(*lines, **kwargs),
                           actor="test", skip_invalid=skip_invalid)


def registry(campaign) -> dict[int, RegistryEntry]:
    return {r.customer_id: r for r in RegistryEntry.objects.filter(campaign=campaign)}


def key() -> str:
    return settings.PHONE_HASH_KEY


@pytest.fixture
def campaign(make_campaign):
    return make_campaign(slug="breach")


def test_a_good_file_is_typed_hashed_and_loaded(campaign):
    result = load(campaign, *GOOD)
    assert (result.rows, result.inserted, result.updated, result.invalid) == (6, 6, 0, 0)
    assert result.registry_rows == 6
    rows = registry(campaign)
    assert {cid: r.account_status for cid, r in rows.items()} == {
        1: "active", 2: "dormant", 3: "closed", 4: "closed", 5: "active", 6: "closed"}
    # A closed account's phone is kept as its keyed hash; an open or dormant one's is
    # checked (a bad one refuses the line), not kept.
    assert bytes(rows[3].phone_hash) == phone_hash("010-3456-7890", key=key())
    assert bytes(rows[4].phone_hash) == phone_hash("0113456789", key=key())
    assert [rows[cid].phone_hash for cid in (1, 2, 5, 6)] == [None] * 4
    # No offset: read in Asia/Seoul; with one: as given.
    assert rows[3].account_closed_at == dt.datetime(2025, 11, 30, tzinfo=SEOUL)
    assert rows[4].account_closed_at == dt.datetime(2025, 12, 1, 10, 30, tzinfo=dt.UTC)
    assert rows[6].account_closed_at == dt.datetime(2025, 12, 2, 8, 0, tzinfo=SEOUL)
    assert rows[1].account_closed_at is None
    event = AuditEvent.objects.get(action="registry.imported")
    assert (event.target_id, event.payload["inserted"], event.payload["rows"]) == ("breach", 6, 6)


def test_columns_may_come_in_any_order_and_the_header_may_have_a_bom(campaign):
    source = io.BytesIO("\ufeffphone,customer_id,account_closed_at,account_status\r\n"
                        "010-1111-2222,7,2025-11-30,closed\r\n".encode())
    import_registry(campaign=campaign, source=source, actor="test")
    assert bytes(registry(campaign)[7].phone_hash) == phone_hash("01011112222", key=key())


BAD = {
    "0,active,,": "customer_id is not a positive 64-bit integer",
    "-3,active,,": "customer_id is not a positive 64-bit integer",
    "x12,active,,": "customer_id is not a positive 64-bit integer",
    "9223372036854775808,active,,": "customer_id is not a positive 64-bit integer",
    "11,gone,,": "account_status is not active, dormant or closed",
    "12,,,": "account_status is not active, dormant or closed",
    "13,closed,,010-1234-5678": "account_closed_at is required for a closed account",
    "14,active,2025-01-01,": "account_closed_at is given for an account that is not closed",
    "15,closed,2025-02-30,": "account_closed_at is not a valid ISO 8601 date or timestamp",
    "16,closed,yesterday,": "account_closed_at is not a valid ISO 8601 date or timestamp",
    "17,closed,2025-01-01T25:00,": "account_closed_at is not a valid ISO 8601 date or timestamp",
    "18,active,,02-123-4567": "phone is not a Korean mobile number",
    "19,active,,010-1234-56789": "phone is not a Korean mobile number",
}


def test_bad_lines_are_reported_by_number_and_nothing_is_loaded(campaign):
    bad = list(BAD)
    with pytest.raises(RegistryFileRejected) as caught:
        load(campaign, *GOOD, *bad)
    problems = [str(p) for p in caught.value.problems]
    assert problems == [f"line {i + 2 + len(GOOD)}: {reason}"
                        for i, reason in enumerate(BAD.values())]
    assert caught.value.invalid == len(BAD)
    assert not RegistryEntry.objects.exists()
    assert not AuditEvent.objects.filter(action="registry.imported").exists()


def test_every_line_of_a_repeated_customer_id_is_refused(campaign):
    with pytest.raises(RegistryFileRejected) as caught:
        load(campaign, "1,active,,", "2,active,,", "01,dormant,,")
    assert [str(p) for p in caught.value.problems] == [
        "line 2: customer_id appears on more than one line of the file",
        "line 4: customer_id appears on more than one line of the file",
    ]


def test_skip_invalid_loads_the_good_lines_only(campaign):
    result = load(campaign, *GOOD, "0,active,,", "1,active,,", skip_invalid=True)
    assert (result.rows, result.invalid, result.inserted) == (8, 3, 5)
    assert sorted(registry(campaign)) == [2, 3, 4, 5, 6]
    assert [p.line for p in result.problems] == [2, 8, 9]


def test_problems_listed_are_capped_but_all_are_counted(campaign):
    lines = [f"{i},nope,," for i in range(1, 51)]
    with pytest.raises(RegistryFileRejected) as caught:
        import_registry(campaign=campaign, source=csv_bytes(*lines), actor="t",
                        problems_shown=5)
    assert [p.line for p in caught.value.problems] == [2, 3, 4, 5, 6]
    assert caught.value.invalid == 50


def test_reimporting_the_same_file_changes_nothing(campaign):
    load(campaign, *GOOD)
    before = _row_versions(campaign)
    again = load(campaign, *GOOD)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 6)
    assert _row_versions(campaign) == before


def _row_versions(campaign) -> list[tuple]:
    """Each row's physical version (xmin, ctid) and import time: any rewrite changes them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT customer_id, xmin::text, ctid::text, imported_at "
                       "FROM vouchers_registryentry WHERE campaign_id = %s ORDER BY 1",
                       [campaign.pk])
        return cursor.fetchall()


def test_a_changed_line_rewrites_that_row_only(campaign):
    load(campaign, *GOOD)
    before = dict((r[0], r[1:]) for r in _row_versions(campaign))
    changed = [line.replace("1,active,,010-1234-5678", "1,closed,2025-12-24,010-9999-0000")
               for line in GOOD]
    result = load(campaign, *changed)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 5)
    after = dict((r[0], r[1:]) for r in _row_versions(campaign))
    assert [cid for cid in before if before[cid] != after[cid]] == [1]
    row = registry(campaign)[1]
    assert row.account_status == "closed"
    assert bytes(row.phone_hash) == phone_hash("010-9999-0000", key=key())


def test_a_second_file_adds_customers_and_leaves_issued_vouchers_alone(campaign):
    load(campaign, *GOOD)
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=100, run_id=None, chunk_id=None)
    vouchers = list(Voucher.objects.order_by("pk").values())
    result = load(campaign, "100,active,,010-5555-6666", "101,closed,2025-10-01,")
    assert (result.inserted, result.registry_rows) == (2, 8)
    assert list(Voucher.objects.order_by("pk").values()) == vouchers
    assert sorted(registry(campaign)) == [1, 2, 3, 4, 5, 6, 100, 101]


def test_no_phone_number_is_left_anywhere(campaign):
    phones = ["010-1234-5678", "01012345678", "1012345678", "2345-6789", "3456-7890"]
    load(campaign, *GOOD, "0,active,,010-8888-7777", skip_invalid=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(r)::text FROM vouchers_registryentry r "
                       "UNION ALL SELECT row_to_json(a)::text FROM voucher_service_auditevent a")
        stored = " ".join(row[0] for row in cursor.fetchall())
    assert not _table_exists(f"registry_import_raw_{campaign.pk}")
    assert not _table_exists(f"registry_import_rows_{campaign.pk}")
    assert stored and not any(p in stored for p in [*phones, "88887777"])


def test_a_line_that_is_no_csv_row_is_named_without_its_content(campaign):
    with pytest.raises(RegistryFileRejected) as caught:
        load(campaign, "1,active,,", "2,active,,010-4321-8765,extra")
    assert caught.value.detail == (
        "line 3 is not a CSV row of the header's 4 columns; nothing was loaded.")
    assert not RegistryEntry.objects.exists()


def test_invalid_utf8_is_refused(campaign):
    source = io.BytesIO(f"{HEADER}\n1,active,,\n2,act\xff\xfeive,,\n".encode("latin-1"))
    with pytest.raises(RegistryFileRejected, match="line 3 is not valid UTF-8"):
        import_registry(campaign=campaign, source=source, actor="t")


@pytest.mark.parametrize("header", ["", "customer_id,account_status,phone",
                                    "1,active,,010-1234-5678", f"{HEADER},exposed,exposed",
                                    f"{HEADER},leaked", f"{HEADER},phone"])
def test_a_file_without_the_header_is_refused_without_echoing_it(campaign, header):
    with pytest.raises(RegistryFileRejected) as caught:
        load(campaign, "2,active,,", header=header)
    assert "must be the header" in str(caught.value.detail)
    assert "010" not in str(caught.value.detail)


def _lease(campaign) -> RegistryImportLease | None:
    return RegistryImportLease.objects.filter(campaign=campaign).first()


def _table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_one_import_per_campaign_at_a_time(campaign):
    """Another import holds the campaign's lease: renewed just now, or long ago but with its
    row locked by one of its transactions (a long COPY). Either way this import is refused
    at once and loads nothing; once the lease is given back, it loads."""
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("INSERT INTO eligibility_registryimportlease (campaign_id, holder, "
                      "renewed_at) VALUES (%s, %s, now())", [campaign.pk, uuid.uuid4()])
        try:
            with pytest.raises(ProblemError) as caught:
                load(campaign, *GOOD)
            assert caught.value.code == "import_in_progress"
            other.execute("UPDATE eligibility_registryimportlease SET renewed_at = now()"
                          " - interval '1 day'")
            with other.transaction():
                other.execute("SELECT 1 FROM eligibility_registryimportlease FOR UPDATE")
                started = time.monotonic()
                with pytest.raises(ProblemError) as caught:
                    load(campaign, *GOOD)
                assert caught.value.code == "import_in_progress"
                assert time.monotonic() - started < 5
            assert not RegistryEntry.objects.exists()
        finally:
            other.execute("DELETE FROM eligibility_registryimportlease")
    assert load(campaign, *GOOD).inserted == len(GOOD)
    assert _lease(campaign) is None


def test_the_lease_of_an_import_that_died_is_taken_over(campaign):
    """An import that died left its lease unrenewed and its typed rows behind: the next
    import takes both over once the lease is LEASE_SECONDS old, loads, and leaves
    neither."""
    rows_table = f"registry_import_rows_{campaign.pk}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE UNLOGGED TABLE {rows_table} (line bigint)")
    RegistryImportLease.objects.create(
        campaign=campaign, holder=uuid.uuid4(),
        renewed_at=timezone.now() - dt.timedelta(seconds=LEASE_SECONDS + 1))

    assert load(campaign, *GOOD).inserted == len(GOOD)
    assert _lease(campaign) is None
    assert not _table_exists(rows_table)


def test_an_import_whose_lease_was_taken_over_stops_and_leaves_the_new_ones_rows(
        campaign, monkeypatch):
    """Between two batches another import takes the lease over (this one went unrenewed
    too long): the next batch is refused before it writes, and this import neither gives
    the lease back nor drops the typed rows, which are the new holder's now."""
    monkeypatch.setattr(importing, "BATCH_PAGES", 1)
    successor = uuid.uuid4()

    def take_over(stage, done, total):
        if stage == "load":
            RegistryImportLease.objects.filter(campaign=campaign).update(holder=successor)

    lines = [f"{cid},active,," for cid in range(1, 2001)]
    with pytest.raises(ProblemError) as caught:
        import_registry(campaign=campaign, source=csv_bytes(*lines), actor="test",
                        progress=take_over)
    assert caught.value.code == "import_in_progress"
    assert 0 < RegistryEntry.objects.count() < len(lines)
    assert _lease(campaign).holder == successor
    assert _table_exists(f"registry_import_rows_{campaign.pk}")


def _write(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "registry.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return str(path)


def test_command_prints_the_registry_count_last(campaign, tmp_path, capsys):
    call_command("import_eligibility", "--campaign", "breach", _write(tmp_path, *GOOD))
    call_command("import_eligibility", "--campaign", "breach",
                 _write(tmp_path, *GOOD, "77,dormant,,"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "7"
    assert lines[-2] == "7 lines: 1 added, 0 updated, 6 unchanged, 0 invalid skipped"


def test_command_lists_bad_lines_and_fails(campaign, tmp_path, capsys):
    path = _write(tmp_path, "1,active,,010-1234-5678", "2,active,,010-1234", "3,x,,")
    with pytest.raises(CommandError, match="2 of 3 lines are invalid; nothing was loaded"):
        call_command("import_eligibility", "--campaign", "breach", path)
    err = capsys.readouterr().err
    assert "line 3: phone is not a Korean mobile number" in err
    assert "line 4: account_status is not active, dormant or closed" in err
    assert "010-1234" not in err
    call_command("import_eligibility", "--campaign", "breach", path, "--skip-invalid")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "1"


def test_command_refuses_an_unknown_campaign(db, tmp_path):
    with pytest.raises(CommandError, match="No campaign 'nope'"):
        call_command("import_eligibility", "--campaign", "nope", _write(tmp_path, *GOOD))


def test_progress_counts_every_byte_after_the_header_and_each_batch(campaign):
    source = csv_bytes(*GOOD)
    seen: list[tuple[str, int, int | None]] = []
    import_registry(campaign=campaign, source=source, actor="t",
                    progress=lambda *event: seen.append(event))
    read = [done for stage, done, _ in seen if stage == "read"]
    assert sum(read) == len(source.getvalue()) - len(HEADER) - 1
    assert {total for stage, _, total in seen if stage == "read"} == {sum(read)}
    assert [(stage, done, total) for stage, done, total in seen if stage == "load"] == \
        [("load", 1, 1)]


def test_once_eligibility_is_open_changed_customers_are_fenced(
        make_campaign, django_capture_on_commit_callbacks):
    opened = make_campaign(slug="opened")
    with django_capture_on_commit_callbacks(execute=True):
        load(opened, *GOOD)  # a first import, plain, counts and fences its customers too
    assert {cid for cid in range(1, 10)
            if cache.get(answer_key("opened", cid)) == FENCE} == set(range(1, 7))
    cache.clear()
    with django_capture_on_commit_callbacks(execute=True):
        load(opened, "1,dormant,,", *GOOD[1:], "8,active,,")
    fenced = {cid for cid in range(1, 10) if cache.get(answer_key("opened", cid)) == FENCE}
    assert fenced == {1, 8}


def test_before_eligibility_opens_nothing_is_fenced(
        make_campaign, django_capture_on_commit_callbacks):
    later = make_campaign(slug="later", opens_at=timezone.now() + dt.timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        load(later, *GOOD)
    assert callbacks == []


def test_the_largest_id_and_leading_zeros_are_customer_ids(campaign):
    load(campaign, "9223372036854775807,active,,", "0000000000000000042,dormant,,")
    assert sorted(registry(campaign)) == [42, 9223372036854775807]
