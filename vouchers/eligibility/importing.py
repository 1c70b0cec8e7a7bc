"""Loading a campaign's affected-customer registry from a CSV file, at 33.7M-row scale.

The file is streamed in fixed-size chunks through COPY into an unlogged staging table
(memory stays flat whatever the file's size), validated and typed in SQL (phones
checked there, and a closed account's hashed with pgcrypto, so no phone number crosses
into Python), then upserted into the registry in batches of short transactions (inserted
plainly into a campaign that has none yet). Typing and upserting are
CPU work for PostgreSQL, so they run in slices on ``REGISTRY_IMPORT_CONNECTIONS``
connections at once
(one thread each), one backend per core; inside a caller's transaction, which only its
own connection can see, the slices run one after another on that connection. The SQL and
the rules it enforces are in ``importing_sql``. No state lives in a database session
between two transactions, so the import works through a pooler in transaction mode.

* A file with any bad line loads nothing, unless ``skip_invalid``: then its good lines
  load and the bad ones are counted and reported. Problems name the line and the rule
  broken, never the line's content (it may hold a phone number).
* Re-importing the same file writes nothing: a registry row is rewritten only where one
  of its fields changed (``exposed`` is one only when the file has that column). A later
  file adds its new customers beside the ones already there; nothing here touches
  vouchers. Once eligibility is open, the cached answers of the customers added or
  changed are fenced after each batch commits.
* The batches commit one by one: an import that dies half-way leaves some batches loaded,
  and running it again completes it (the same rows compare equal and are skipped).
* One import per campaign at a time (``RegistryImportLease``, renewed by the import's
  own transactions and, while slices run, every ``RENEW_SECONDS``); a second one is
  refused. The lease of an import that died is taken over once it has gone unrenewed for
  ``LEASE_SECONDS``; a slice commits only while its import holds the lease.
"""

from __future__ import annotations

import csv
import hashlib
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg import errors as pg_errors
from psycopg import sql

from voucher_service.audit import record_event
from voucher_service.integrity import lock_not_available, ran_unless_violated
from voucher_service.problems import ProblemError
from vouchers.eligibility import importing_sql as q
from vouchers.models import Campaign, RegistryEntry
from vouchers.models.changes import customers_changed
from vouchers.models.registry import REGISTRY_KEY

CHUNK_BYTES = 1 << 20
# Heap pages of the typed rows table per upsert transaction: about 150,000 rows.
BATCH_PAGES = 2048
MAX_HEADER_BYTES = 4096
# An import's transactions follow each other within moments (the longest gap is one batch's
# cache fences), so a lease unrenewed this long belongs to an import that died.
LEASE_SECONDS = 120
RENEW_SECONDS = 10

# (stage, amount done since the last call, stage total or None): "read" counts bytes of
# the file, "load" counts upsert batches.
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class LineProblem:
    line: int
    code: str

    def __str__(self) -> str:
        return f"line {self.line}: {q.PROBLEMS.get(self.code, self.code)}"


@dataclass(frozen=True)
class ImportResult:
    rows: int
    invalid: int
    inserted: int
    updated: int
    registry_rows: int
    problems: tuple[LineProblem, ...]

    @property
    def unchanged(self) -> int:
        return self.rows - self.invalid - self.inserted - self.updated


class RegistryFileRejected(ProblemError):
    """Nothing was loaded: a malformed file, or bad lines without ``skip_invalid``."""

    def __init__(self, detail: str, *, problems: tuple[LineProblem, ...] = (),
                 invalid: int = 0) -> None:
        super().__init__(status=400, code="invalid_registry_file", detail=detail,
                         invalid_lines=invalid, problems=[str(p) for p in problems])
        self.problems = problems
        self.invalid = invalid


def import_registry(
    *,
    campaign: Campaign,
    source: BinaryIO,
    actor: str,
    skip_invalid: bool = False,
    problems_shown: int = 20,
    progress: Progress | None = None,
) -> ImportResult:
    """Loads ``source`` (a binary CSV stream, header first) into ``campaign``'s registry."""
    report = progress or (lambda stage, done, total: None)
    with _campaign_lease(campaign) as lease:
        header = _read_header(source)
        digest, rows, invalid, pages = _stage(lease, source, header, report)
        problems = _first_problems(lease, problems_shown) if invalid else ()
        if invalid and not skip_invalid:
            raise RegistryFileRejected(
                f"{invalid} of {rows} lines are invalid; nothing was loaded.",
                problems=problems, invalid=invalid,
            )
        inserted, updated = _upsert(lease, campaign, pages, report,
                                    exposed="exposed" in header)
    registry_rows = RegistryEntry.objects.filter(campaign=campaign).count()
    result = ImportResult(rows=rows, invalid=invalid, inserted=inserted, updated=updated,
                          registry_rows=registry_rows, problems=problems)
    record_event(
        actor=actor, action="registry.imported", target_type="campaign",
        target_id=campaign.slug,
        payload={"sha256": digest, "rows": rows, "skipped_invalid": invalid,
                 "inserted": inserted, "updated": updated, "unchanged": result.unchanged,
                 "registry_rows": registry_rows},
    )
    return result


@dataclass(frozen=True)
class _Lease:
    campaign: Campaign
    holder: uuid.UUID

    @property
    def params(self) -> dict:
        return {"campaign_id": self.campaign.pk, "holder": self.holder}

    @property
    def raw(self) -> sql.Identifier:
        return q.raw_table(self.campaign.pk)

    @property
    def rows(self) -> sql.Identifier:
        return q.rows_table(self.campaign.pk)

    @contextmanager
    def transaction(self) -> Iterator:
        """One of the import's transactions on the main connection: renews the lease first
        (its row stays locked until COMMIT, so nobody takes it over meanwhile) and last
        (the COMMIT is when it was last seen alive)."""
        with transaction.atomic(), connection.cursor() as cursor:
            self._renew(cursor)
            yield cursor
            self._renew(cursor)

    @contextmanager
    def slice_transaction(self) -> Iterator:
        """A slice's transaction, one of several at once: checks the lease first (nothing
        is written for an import that lost it) and holds it shared last, so no takeover
        comes between that check and the COMMIT. Renewing is the main thread's
        (``in_slices``): renewals here would queue the slices behind each other."""
        with transaction.atomic(), connection.cursor() as cursor:
            self._check(cursor, q.CHECK_LEASE)
            yield cursor
            self._check(cursor, q.HOLD_LEASE)

    def in_slices(self, work: Callable[[object], object], items: Sequence,
                  done: Callable[[object], None]) -> None:
        """Runs ``work`` on each item, on up to ``REGISTRY_IMPORT_CONNECTIONS`` threads
        with a connection each, and passes each result to ``done`` in this thread as it
        comes. The first failure stops the slices not started and is raised once the
        others have ended."""
        renewed = time.monotonic()
        connections = min(settings.REGISTRY_IMPORT_CONNECTIONS, len(items))
        if connection.in_atomic_block or connections < 2:
            for item in items:
                done(work(item))
                renewed = self._keep_alive(renewed)
            return
        pending: queue.SimpleQueue = queue.SimpleQueue()
        for item in items:
            pending.put(item)
        results: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()

        def slices() -> None:
            try:
                while not stop.is_set():
                    try:
                        item = pending.get_nowait()
                    except queue.Empty:
                        return
                    results.put((True, work(item)))
            except BaseException as exc:  # handed to the main thread, which raises it
                stop.set()
                results.put((False, exc))
            finally:
                connection.close()

        threads = [threading.Thread(target=slices, name=f"registry-import-{n}", daemon=True)
                   for n in range(connections)]
        for thread in threads:
            thread.start()
        try:
            for _ in items:
                while True:
                    try:
                        ok, value = results.get(timeout=RENEW_SECONDS)
                        break
                    except queue.Empty:
                        renewed = self._keep_alive(renewed)
                if not ok:
                    raise value
                done(value)
                renewed = self._keep_alive(renewed)
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    def _keep_alive(self, renewed: float) -> float:
        """Renews the lease if the last renewal is ``RENEW_SECONDS`` old; returns when it
        was last renewed."""
        if time.monotonic() - renewed < RENEW_SECONDS:
            return renewed
        with transaction.atomic(), connection.cursor() as cursor:
            self._renew(cursor)
        return time.monotonic()

    def _renew(self, cursor) -> None:
        cursor.execute(q.RENEW_LEASE, self.params)
        if cursor.rowcount != 1:
            raise self._taken_over()

    def _check(self, cursor, statement: str) -> None:
        cursor.execute(statement, self.params)
        if cursor.fetchone() is None:
            raise self._taken_over()

    def _taken_over(self) -> ProblemError:
        return ProblemError(
            status=409, code="import_in_progress",
            detail=f"Another registry import for {self.campaign.slug} took this one's "
                   "place (this one went unrenewed too long); run it again.")


def _in_progress(campaign: Campaign) -> ProblemError:
    return ProblemError(status=409, code="import_in_progress",
                        detail=f"A registry import for {campaign.slug} is running.")


def drop_abandoned_staging() -> list[int]:
    """Drops the staging tables that imports which died left behind, once their lease has
    gone unrenewed for ``LEASE_SECONDS`` (as the next import of the campaign would): the
    raw lines hold phone numbers, which must not wait for that import. Tables of a
    running import stay. Returns the campaigns whose tables were dropped."""
    with connection.cursor() as cursor:
        cursor.execute(q.STAGED_CAMPAIGNS)
        staged = {campaign_id for (campaign_id,) in cursor.fetchall()}
    campaigns = Campaign.objects.filter(pk__in=staged)
    dropped = []
    for campaign in campaigns:
        try:
            with _campaign_lease(campaign):
                pass  # taken: the import is dead; giving the lease back drops its tables
        except ProblemError:
            continue  # the import is running
        dropped.append(campaign.pk)
    with connection.cursor() as cursor:
        for campaign_id in staged - {campaign.pk for campaign in campaigns}:
            cursor.execute(q.drop_tables(q.raw_table(campaign_id), q.rows_table(campaign_id)))
            dropped.append(campaign_id)
    return dropped


@contextmanager
def _campaign_lease(campaign: Campaign) -> Iterator[_Lease]:
    """Holds the campaign's import lease; on the way out, drops the staging tables and
    gives the lease back, unless another import has taken all three over meanwhile."""
    lease = _Lease(campaign=campaign, holder=uuid.uuid4())
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', '1s', true)")
            cursor.execute(q.TAKE_LEASE, {**lease.params, "stale": LEASE_SECONDS})
            taken = cursor.fetchone() is not None
            cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
    except OperationalError as exc:
        if not lock_not_available(exc):
            raise
        taken = False
    if not taken:
        raise _in_progress(campaign)
    try:
        yield lease
    finally:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(q.RELEASE_LEASE, lease.params)
            if cursor.rowcount == 1:
                cursor.execute(q.drop_tables(lease.raw, lease.rows))


def _read_header(source: BinaryIO) -> list[str]:
    line = source.readline(MAX_HEADER_BYTES)
    try:
        fields = next(csv.reader([line.decode("utf-8-sig")]), [])
    except UnicodeDecodeError:
        fields = []
    header = [field.strip().lower() for field in fields]
    named, allowed = set(header), {*q.COLUMNS, *q.OPTIONAL_COLUMNS}
    if len(named) < len(header) or not set(q.COLUMNS) <= named <= allowed:
        # The line is not echoed: a file without a header starts with a customer's data.
        raise RegistryFileRejected(
            "Line 1 must be the header naming the columns "
            f"{','.join(q.COLUMNS)} and optionally {','.join(q.OPTIONAL_COLUMNS)} "
            "(in any order)."
        )
    return header


_COPY_LINE = re.compile(r"\bline (\d+)")


def _stage(lease: _Lease, source: BinaryIO, header: list[str], report: Progress
           ) -> tuple[str, int, int, int]:
    """Streams the rest of the file into the raw table (one transaction), types its lines
    into the rows table and counts them (in slices, on several connections at once), then
    drops the raw table and marks the duplicate ids if any. Returns the file's
    SHA-256, the number of lines and of invalid ones, and the rows table's heap pages."""
    try:
        with lease.transaction() as cursor:
            cursor.execute(q.drop_tables(lease.raw, lease.rows))  # left by an import that died
            cursor.execute(q.create_raw(lease.raw))
            digest = _copy(cursor, lease.raw, source, header, report)
            cursor.execute(q.heap_pages(lease.raw))
            (raw_pages,) = cursor.fetchone()
            with _timestamp_parser(cursor):
                cursor.execute(q.create_rows(lease.rows, lease.raw), _typing(0, 0))
    except (pg_errors.BadCopyFileFormat, pg_errors.CharacterNotInRepertoire,
            pg_errors.UntranslatableCharacter) as exc:
        # PostgreSQL's message quotes the line; only its number is passed on.
        found = _COPY_LINE.search(exc.diag.context or "")
        where = f"line {int(found.group(1)) + 1}" if found else "the file"
        what = ("is not valid UTF-8" if isinstance(exc, pg_errors.CharacterNotInRepertoire)
                else f"is not a CSV row of the header's {len(header)} columns")
        raise RegistryFileRejected(f"{where} {what}; nothing was loaded.") from None

    def type_slice(pages: tuple[int, int]) -> None:
        with lease.slice_transaction() as cursor, _timestamp_parser(cursor):
            cursor.execute(q.type_rows(lease.rows, lease.raw), _typing(*pages))

    # Equal slices, one per connection; the last one runs to the end of the table.
    parts = max(settings.REGISTRY_IMPORT_CONNECTIONS, 1)
    step = -(-max(raw_pages, 1) // parts)
    slices = [(lo, lo + step) for lo in range(0, max(raw_pages, 1), step)]
    lease.in_slices(type_slice, slices, lambda _: None)

    def count_part(part: int) -> tuple[int, int, bool]:
        with lease.slice_transaction() as cursor:
            cursor.execute(q.WORK_MEM)
            cursor.execute(q.count_part(lease.rows), {"part": part, "parts": parts})
            return cursor.fetchone()

    counts: list[tuple[int, int, bool]] = []
    lease.in_slices(count_part, range(parts), counts.append)
    rows, invalid = sum(c[0] for c in counts), sum(c[1] for c in counts)
    with lease.transaction() as cursor:
        cursor.execute(q.drop_tables(lease.raw))
        if any(c[2] for c in counts):
            cursor.execute(q.WORK_MEM)
            cursor.execute(q.mark_duplicates(lease.rows))
        cursor.execute(q.heap_pages(lease.rows))
        (pages,) = cursor.fetchone()
    return digest, rows, invalid, pages


def _pages(lo: int, hi: int) -> dict:
    """The parameters of a statement reading heap pages [lo, hi) by TID range."""
    return {"lo": f"({lo},0)", "hi": f"({hi},0)"}


def _typing(lo: int, hi: int) -> dict:
    return {"key": settings.PHONE_HASH_KEY, **_pages(lo, hi)}


@contextmanager
def _timestamp_parser(cursor) -> Iterator[None]:
    cursor.execute(q.create_timestamp_parser(settings.TIME_ZONE))
    yield
    cursor.execute(q.DROP_TIMESTAMP_PARSER)


def _copy(cursor, raw: sql.Identifier, source: BinaryIO, header: list[str],
          report: Progress) -> str:
    """Streams the rest of the file into the raw table; returns the file's SHA-256."""
    digest = hashlib.sha256()
    total = _remaining_bytes(source)
    with cursor.copy(q.copy_raw(raw, header)) as copy:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            copy.write(chunk)
            report("read", len(chunk), total)
    return digest.hexdigest()


def _remaining_bytes(source: BinaryIO) -> int | None:
    """Bytes from here to the end, for the progress bar; None for a stream of no known size."""
    try:
        position = source.tell()
        end = source.seek(0, 2)
        source.seek(position)
    except (OSError, AttributeError):
        return None
    return end - position


def _first_problems(lease: _Lease, limit: int) -> tuple[LineProblem, ...]:
    with connection.cursor() as cursor:
        cursor.execute(q.first_problems(lease.rows), {"limit": limit})
        return tuple(LineProblem(line=line, code=code) for line, code in cursor.fetchall())


def _upsert(lease: _Lease, campaign: Campaign, pages: int, report: Progress, *,
            exposed: bool) -> tuple[int, int]:
    """The good rows into the registry, a batch of heap pages per transaction, on several
    connections at once (the batches hold distinct customers: duplicates are refused).
    Into a campaign with no registry yet, each batch tries the plain INSERT first."""
    table = RegistryEntry._meta.db_table
    upsert = q.load_batch(table, lease.rows, exposed=exposed, upsert=True)
    fresh = not RegistryEntry.objects.filter(campaign=campaign).exists()
    # The plain form, by whether eligibility has opened (whose answers need the ids).
    plain = {opened: q.load_batch(table, lease.rows, exposed=exposed, upsert=False,
                                  counted=opened) for opened in (False, True)}
    imported_at = timezone.now()
    batches = range(0, pages, BATCH_PAGES)
    counts = [0, 0]

    def load(lo: int) -> tuple[int, int]:
        # Answers are cached only once eligibility is open: before that, no fences needed.
        opened = timezone.now() >= campaign.eligibility_opens_at
        params = {"campaign_id": campaign.pk, "imported_at": imported_at,
                  "changed_ids": opened, **_pages(lo, lo + BATCH_PAGES)}
        with lease.slice_transaction() as cursor:
            cursor.execute(q.WORK_MEM)
            if fresh and ran_unless_violated(cursor, plain[opened], params, REGISTRY_KEY):
                if not opened:
                    return cursor.rowcount, 0
            else:
                cursor.execute(upsert, params)
            inserted, updated, changed = cursor.fetchone()
            if changed:
                customers_changed(campaign_id=campaign.pk, customer_ids=changed)
        return inserted, updated

    def loaded(batch: tuple[int, int]) -> None:
        counts[0] += batch[0]
        counts[1] += batch[1]
        report("load", 1, len(batches))

    lease.in_slices(load, batches, loaded)
    return counts[0], counts[1]
