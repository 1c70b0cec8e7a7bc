"""The rehearsal's customers: who is in the registry file, who comes late, who is revoked,
and the registry CSV files themselves.

Customer ids run 1..N+A. ``A`` of them, evenly spread over the whole range, are the late
additions (the real programme added 165,000 accounts to 33.7M after launch: 0.49 %); the
other ``N`` are the registry file. Spreading the additions over the range means that the
run issuing them meets them in every chunk, beside customers issued before, as a real
late file would be. A customer id ``c`` is late when ``((c - 1) * A) mod (N + A) < A``:
exactly ``A`` ids, about one every ``(N + A) / A``.

Everything else about a customer follows from a hash of its id (PostgreSQL's
``hashint8``), so the files are the same on every run and their proportions are exact
enough to check: ``CLOSED`` per mille closed (with a closing time in one of the ISO 8601
shapes people send), ``DORMANT`` per mille dormant, the rest active; ``NO_PHONE`` per mille
without a phone; the others with a mobile number, unique per customer, typed in one of
ten formats (``010-1234-5678``, ``01012345678``, ``+82 10 1234 5678``, ...).

The file is written by PostgreSQL (``COPY (SELECT ... FROM generate_series) TO STDOUT``)
and streamed to disk: at 33.7M rows a minute or two, where a Python loop would take many.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from django.db import connection, transaction
from psycopg import sql
from tqdm import tqdm

FULL_CUSTOMERS = 33_700_000
FULL_ADDITIONS = 165_000
FULL_REVOCATIONS = 10_000
CLOSED = 35  # per mille: "a few percent" of the accounts were closed
DORMANT = 90  # per mille
NO_PHONE = 5  # per mille
# The real programme: 5,000 won for any order, 5,000 for food delivery, 20,000 for travel
# (on orders of 40,000 or more) and 20,000 for luxury, all single-use.
COMPONENTS = (("all", 5_000, 0), ("eats", 5_000, 0), ("travel", 20_000, 40_000),
              ("luxury", 20_000, 0))
PER_CUSTOMER_KRW = sum(amount for _, amount, _ in COMPONENTS)
HEADER = "customer_id,account_status,account_closed_at,phone"

# The ten formats, on the eight subscriber digits split in two (m, l).
_PHONE_FORMATS = (
    "'010-' || m || '-' || l", "'010' || m || l", "'+82 10 ' || m || ' ' || l",
    "'010 ' || m || ' ' || l", "'+82-10-' || m || '-' || l", "'(010) ' || m || '-' || l",
    "'010.' || m || '.' || l", "'+8210' || m || l", "'82 10-' || m || '-' || l",
    "'0082 10 ' || m || ' ' || l",
)
_CLOSED_AT_FORMATS = ("YYYY-MM-DD", "YYYY-MM-DD HH24:MI", 'YYYY-MM-DD"T"HH24:MI:SS"+09:00"')

# One row per customer of the file (late = false) or of the late file (late = true). Each
# hash is taken once per row: a repeated expression would be computed again.
_ROWS = """
SELECT g AS customer_id,
       CASE WHEN x.s < {closed} THEN 'closed' WHEN x.s < {closed} + {dormant} THEN 'dormant'
            ELSE 'active' END AS account_status,
       CASE WHEN x.s < {closed} THEN
            CASE (x.h >> 4) % 3 {closed_at_formats} END END AS account_closed_at,
       CASE WHEN (x.h >> 8) % 1000 < {no_phone} THEN ''
            ELSE CASE x.h % 10 {phone_formats} END END AS phone
FROM generate_series(1, {total}::bigint) AS g,
     LATERAL (SELECT (hashint8(g)::bigint & 2147483647) % 1000 AS s,
                     hashint8extended(g, 7) & 9223372036854775807 AS h,
                     (g * 7654321 + 1234567) % 100000000 AS d) AS x,
     LATERAL (SELECT lpad((x.d / 10000)::text, 4, '0') AS m,
                     lpad((x.d % 10000)::text, 4, '0') AS l,
                     timestamptz '2025-03-01 00:00:00+09'
                     + ((x.h >> 20) % (250 * 1440)) * interval '1 minute' AS closed_at) AS y
WHERE ((((g - 1) * {additions}) % {total}) < {additions}) = {late}
"""


@dataclass(frozen=True)
class Population:
    customers: int  # N: the registry file's rows

    @property
    def additions(self) -> int:
        """A: 165,000 at 33.7M, in proportion below (at least one)."""
        return max(1, round(self.customers * FULL_ADDITIONS / FULL_CUSTOMERS))

    @property
    def revocations(self) -> int:
        """R: 10,000 at 33.7M, in proportion below (at least one)."""
        return max(1, round(self.customers * FULL_REVOCATIONS / FULL_CUSTOMERS))

    @property
    def total(self) -> int:
        return self.customers + self.additions

    @property
    def scale(self) -> float:
        """How many times this rehearsal must grow to be the real programme."""
        return FULL_CUSTOMERS / self.customers

    def is_late(self, customer_id: int) -> bool:
        return ((customer_id - 1) * self.additions) % self.total < self.additions

    def late_sql(self, column: str) -> str:
        """SQL: whether ``column`` (a trusted identifier) is a late addition's id."""
        return f"mod(({column} - 1) * {self.additions}, {self.total}) < {self.additions}"

    def revoked_ids(self) -> list[int]:
        """R customers of the registry file, spread evenly over the ids."""
        ids = []
        for k in range(self.revocations):
            cid = 3 + k * self.total // self.revocations
            while self.is_late(cid) or cid in ids:
                cid += 1
            ids.append(cid)
        return ids

    def _rows(self, *, late: bool) -> sql.Composed:
        def cases(formats: tuple[str, ...], literal: bool) -> sql.Composed:
            return sql.SQL(" ").join(
                sql.SQL("WHEN {} THEN {}").format(
                    sql.Literal(k),
                    sql.SQL("to_char(y.closed_at, {})").format(sql.Literal(f))
                    if literal else sql.SQL(f))
                for k, f in enumerate(formats))

        return sql.SQL(_ROWS).format(
            closed=sql.Literal(CLOSED), dormant=sql.Literal(DORMANT),
            no_phone=sql.Literal(NO_PHONE), total=sql.Literal(self.total),
            additions=sql.Literal(self.additions), late=sql.Literal(late),
            closed_at_formats=cases(_CLOSED_AT_FORMATS, literal=True),
            phone_formats=cases(_PHONE_FORMATS, literal=False),
        )

    def write_csv(self, path: Path, *, late: bool) -> dict:
        """Writes the registry file (or the late file) to ``path``; returns its rows, bytes
        and the seconds it took. Closing times are written in Asia/Seoul."""
        rows = self.additions if late else self.customers
        started = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER)").format(
            self._rows(late=late))
        with (transaction.atomic(), connection.cursor() as cursor, path.open("wb") as out,
              tqdm(total=rows * 46, unit="B", unit_scale=True, desc=f"writing {path.name}",
                   disable=None, leave=False) as bar):
            cursor.execute("SET LOCAL TIME ZONE 'Asia/Seoul'")
            with cursor.cursor.copy(statement) as copy:
                for block in copy:
                    out.write(block)
                    bar.update(len(block))
        return {"rows": rows, "bytes": path.stat().st_size,
                "seconds": time.perf_counter() - started}

    def expected(self, *, late: bool) -> dict[str, int]:
        """What the file holds, counted by PostgreSQL from the same rows: accounts by
        status, and rows without a phone (in all, and of closed accounts)."""
        statement = sql.SQL(
            "SELECT account_status, count(*), count(*) FILTER (WHERE phone = '') "
            "FROM ({}) r GROUP BY 1").format(self._rows(late=late))
        with connection.cursor() as cursor:
            cursor.execute(statement)
            counts = cursor.fetchall()
        expected = {"active": 0, "dormant": 0, "closed": 0, "no_phone": 0, "closed_no_phone": 0}
        for status, n, no_phone in counts:
            expected[status] = n
            expected["no_phone"] += no_phone
            if status == "closed":
                expected["closed_no_phone"] = no_phone
        return expected
