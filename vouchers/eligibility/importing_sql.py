"""The SQL of the registry import: staging, validation and the upsert, all set-based.

Two staging tables per campaign, neither of them written to the WAL (UNLOGGED), both
dropped by the import as soon as it is done with them; one left by an import that died is
dropped by the next import of the campaign (the import's lease allows one per campaign).
They are ordinary tables rather than TEMP ones so that the import's other connections can
read them (it types and loads on several at once) and so that no session state outlives
a transaction (the import works through a pooler in transaction mode):

``registry_import_raw_<campaign id>``
    the file as COPY delivered it, every field text, plus the line number. ``line`` is an
    identity column starting at 2 (line 1 is the header): COPY inserts rows in file order,
    so it is the line of the row in any file without line breaks inside quoted fields. It
    lives from the COPY's commit until the rows are typed: raw phone numbers exist only
    on the database server, in a table that is not in the WAL (so not in backups or
    replicas) and that a crash empties.
``registry_import_rows_<campaign id>``
    one typed row per line, its phone checked and, a closed account's, reduced to its
    keyed hash (no other phone is kept); a line's
    problem (``PROBLEM``) is derived from its columns. The upsert batches read it.

Rules (documented for operators in the command's help):

* ``customer_id``: a positive 64-bit integer (leading zeros allowed), once per file.
* ``account_status``: ``active``, ``dormant`` or ``closed`` (case and spaces ignored).
* ``account_closed_at``: required for closed accounts and refused for the others. ISO
  8601 (``2025-11-30``, ``2025-11-30 14:05``, ``2025-11-30T14:05:00+09:00``); without an
  offset it is read in the display zone (``TIME_ZONE``, Asia/Seoul).
* ``phone``: optional (a closed account without one cannot claim by phone, but stays
  eligible); when given, a Korean mobile number in any common format
  (``voucher_service.phones``). A closed account's is stored as ``hmac(normal form,
  PHONE_HASH_KEY, sha256)``; an open or dormant account's is checked, not kept.
* ``exposed``: an optional column; what of the customer's data the leak exposed, kinds
  joined by ``|`` from ``ExposedKind`` (case, spaces, order and repeats ignored), empty
  for nothing known. Stored as the kinds' bits (``EXPOSED_BITS``). A file without the
  column leaves the ``exposed`` of the customers already there as it was (new ones get
  nothing known).
"""

from __future__ import annotations

from psycopg import sql

from voucher_service.phones import (
    phone_national_sql,
    phone_normal_form_sql,
    phone_without_separators_sql,
)
from vouchers.models.registry import EXPOSED_BITS

COLUMNS = ("customer_id", "account_status", "account_closed_at", "phone")
OPTIONAL_COLUMNS = ("exposed",)

# Why a line is refused, by the code ``PROBLEM`` gives it.
PROBLEMS = {
    "invalid_customer_id": "customer_id is not a positive 64-bit integer",
    "invalid_account_status": "account_status is not active, dormant or closed",
    "missing_closed_at": "account_closed_at is required for a closed account",
    "unexpected_closed_at": "account_closed_at is given for an account that is not closed",
    "invalid_closed_at": "account_closed_at is not a valid ISO 8601 date or timestamp",
    "invalid_phone": "phone is not a Korean mobile number",
    "invalid_exposed": "exposed is not kinds joined by | from "
                       + ", ".join(kind.value for kind in EXPOSED_BITS),
    "duplicate_customer_id": "customer_id appears on more than one line of the file",
}

_CREATE_RAW = sql.SQL("""
CREATE UNLOGGED TABLE {raw} (
    line bigint GENERATED ALWAYS AS IDENTITY (START WITH 2),
    customer_id text, account_status text, account_closed_at text, phone text, exposed text
)
""")


def raw_table(campaign_id: int) -> sql.Identifier:
    return sql.Identifier(f"registry_import_raw_{int(campaign_id)}")


def rows_table(campaign_id: int) -> sql.Identifier:
    return sql.Identifier(f"registry_import_rows_{int(campaign_id)}")


def create_raw(raw: sql.Identifier) -> sql.Composed:
    return _CREATE_RAW.format(raw=raw)


def copy_raw(raw: sql.Identifier, header: list[str]) -> sql.Composed:
    """COPY into the raw table, its columns in the order the file's header names them."""
    return sql.SQL("COPY {raw} ({columns}) FROM STDIN (FORMAT csv)").format(
        raw=raw, columns=sql.SQL(", ").join(map(sql.Identifier, header))
    )


def heap_pages(table: sql.Identifier) -> sql.Composed:
    return sql.SQL("SELECT pg_relation_size({name}::regclass) / "
                   "current_setting('block_size')::int").format(
        name=sql.Literal(table.as_string()))


# PostgreSQL's own timestamp parser decides validity ("2025-02-30" is refused); the regular
# expression in TYPE_ROWS first limits it to ISO 8601 shapes (no "today", no "epoch"). The
# function's own SET reads a value without an offset in the display zone and restores the
# session's zone on return: a session zone changed under Django would skew its datetimes.
# Created and dropped in each transaction that types rows (a pg_temp function is the
# session's own).
def create_timestamp_parser(zone: str) -> sql.Composed:
    return sql.SQL("""
CREATE OR REPLACE FUNCTION pg_temp.registry_import_timestamptz(value text)
RETURNS timestamptz LANGUAGE plpgsql STABLE SET timezone = {zone} AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$
""").format(zone=sql.Literal(zone))


_ISO_8601 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
    r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)

# One pass over a slice of the raw lines (heap pages [lo, hi): a TID range scan, so the
# slices need no index and the import types them on several connections at once). Every
# costly expression is evaluated once a line: ``cleaned`` and ``nationals`` stand behind
# ``OFFSET 0``, so PostgreSQL computes their columns once instead of substituting their
# expressions into every mention (the phone's rules read each step's value several times:
# ``voucher_service.phones``), and the problem of a line is not computed here but derived
# later from the stored columns (``PROBLEM``). The customer id is checked with string
# functions rather than a regular expression, and its cast runs only where the checks
# passed, so a bad value becomes NULL, never an error. Every phone given is checked; only
# a closed account's is kept, as its keyed hash: a phone is how a closed account's holder
# finds its vouchers (a claim, a re-joined account), and nothing reads an open account's
# (hashing them all was a fifth of typing's time). ``exposed`` is the sum of its kinds'
# bits, or NULL where a part is no kind (an empty part included): a subquery per line,
# which splits the value once (~1 us a line), where an expression per kind would split it
# again for each mention (~5 us); an empty or missing value is nothing known, without the
# subquery.
_TYPED = sql.SQL("""
WITH cleaned AS (
    SELECT line,
           btrim(customer_id) AS customer_id,
           lower(btrim(account_status)) AS account_status,
           nullif(btrim(account_closed_at), '') AS closed_text,
           coalesce(btrim(phone), '') <> '' AS phone_given,
           {phone_without_separators} AS phone_digits,
           nullif(lower(replace(exposed, ' ', '')), '') AS exposed_text
    FROM {raw}
    WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
    OFFSET 0
),
nationals AS (
    SELECT *, {phone_national} AS phone_national FROM cleaned OFFSET 0
)
SELECT line,
       CASE WHEN length(customer_id) BETWEEN 1 AND 19
                 AND ltrim(customer_id, '0123456789') = ''
                 AND (length(customer_id) < 19
                      OR customer_id COLLATE "C" <= '9223372036854775807')
            THEN nullif(customer_id::bigint, 0) END AS customer_id,
       account_status,
       closed_text IS NOT NULL AS closed_given,
       CASE WHEN closed_text ~ {iso_8601}
            THEN pg_temp.registry_import_timestamptz(closed_text) END AS account_closed_at,
       phone_given,
       ({phone_normal_form}) IS NOT NULL AS phone_valid,
       CASE WHEN account_status = 'closed'
            THEN hmac({phone_normal_form}, %(key)s, 'sha256') END AS phone_hash,
       CASE WHEN exposed_text IS NULL THEN 0 ELSE
           (SELECT CASE WHEN count(*) = count(k.bit) THEN coalesce(bit_or(k.bit), 0) END
            FROM unnest(string_to_array(exposed_text, '|')) AS part(kind)
            LEFT JOIN (VALUES {kinds}) AS k(kind, bit) USING (kind))
       END::smallint AS exposed,
       false AS duplicate
FROM nationals
""")


def _typed(raw: sql.Identifier) -> sql.Composed:
    return _TYPED.format(
        raw=raw, iso_8601=sql.Literal(_ISO_8601),
        phone_without_separators=sql.SQL(phone_without_separators_sql("phone")),
        phone_national=sql.SQL(phone_national_sql("phone_digits")),
        phone_normal_form=sql.SQL(phone_normal_form_sql("phone_national")),
        kinds=sql.SQL(", ").join(sql.SQL("({}, {})").format(sql.Literal(kind.value), bit)
                                 for kind, bit in EXPOSED_BITS.items()),
    )


def create_rows(rows: sql.Identifier, raw: sql.Identifier) -> sql.Composed:
    """The empty rows table, its columns those of the typing query (needs the timestamp
    parser and the statement's parameters, though it reads no row)."""
    return sql.SQL("CREATE UNLOGGED TABLE {rows} AS {typed} WITH NO DATA").format(
        rows=rows, typed=_typed(raw))


def type_rows(rows: sql.Identifier, raw: sql.Identifier) -> sql.Composed:
    """Types the raw lines on heap pages [%(lo)s, %(hi)s) into the rows table."""
    return sql.SQL("INSERT INTO {rows} {typed}").format(rows=rows, typed=_typed(raw))


# The first problem of a typed line, or NULL for a good one (cheap: stored columns only).
PROBLEM = sql.SQL("""
CASE
    WHEN customer_id IS NULL THEN 'invalid_customer_id'
    WHEN account_status IS NULL OR account_status NOT IN ('active', 'dormant', 'closed')
        THEN 'invalid_account_status'
    WHEN account_status = 'closed' AND NOT closed_given THEN 'missing_closed_at'
    WHEN account_status <> 'closed' AND closed_given THEN 'unexpected_closed_at'
    WHEN closed_given AND account_closed_at IS NULL THEN 'invalid_closed_at'
    WHEN phone_given AND NOT phone_valid THEN 'invalid_phone'
    WHEN exposed IS NULL THEN 'invalid_exposed'
    WHEN duplicate THEN 'duplicate_customer_id'
END
""")

# Every line of a customer id that appears more than once is refused: which of them is
# right is for whoever made the file to say.
_MARK_DUPLICATES = sql.SQL("""
UPDATE {rows} r SET duplicate = true
FROM (
    SELECT customer_id FROM {rows}
    WHERE customer_id IS NOT NULL
    GROUP BY customer_id HAVING count(*) > 1
) d
WHERE r.customer_id = d.customer_id
""")


def mark_duplicates(rows: sql.Identifier) -> sql.Composed:
    return _MARK_DUPLICATES.format(rows=rows)


# One part of the typed lines (customer ids modulo %(parts)s; lines without an id in part
# 0): how many lines, how many invalid, and whether an id appears more than once. The
# import counts the parts on several connections at once, then marks the duplicates only
# if a part has any: a file seldom does, and hashing every id on one connection took as
# long as an import batch. A line is invalid when its id appears more than once or is
# missing, or else when it has a problem of its own (``PROBLEM``, before any marking).
_COUNT_PART = sql.SQL("""
SELECT coalesce(sum(n), 0)::bigint,
       coalesce(sum(CASE WHEN customer_id IS NULL OR n > 1 THEN n ELSE bad END), 0)::bigint,
       coalesce(bool_or(customer_id IS NOT NULL AND n > 1), false)
FROM (
    SELECT customer_id, count(*) AS n, count(*) FILTER (WHERE ({problem}) IS NOT NULL) AS bad
    FROM {rows}
    WHERE coalesce(customer_id, 0) %% %(parts)s = %(part)s
    GROUP BY customer_id
) ids
""")


def count_part(rows: sql.Identifier) -> sql.Composed:
    return _COUNT_PART.format(rows=rows, problem=PROBLEM)


_FIRST_PROBLEMS = sql.SQL("""
SELECT line, problem
FROM (SELECT line, {problem} AS problem FROM {rows}) p
WHERE problem IS NOT NULL ORDER BY line LIMIT %(limit)s
""")


def first_problems(rows: sql.Identifier) -> sql.Composed:
    return _FIRST_PROBLEMS.format(rows=rows, problem=PROBLEM)

# One batch: the good rows on heap pages [lo, hi) of the rows table, in customer-id order
# (index locality, and concurrent writers lock registry rows in one order). Batches run
# on several connections at once; they hold distinct customers (duplicates are refused).
# The upsert rewrites a row that exists only where something changed, so importing the
# same file again writes nothing. Into a campaign whose registry was empty when the import
# began (its first import, at full size 33.7M rows), the plain form inserts instead:
# ``ON CONFLICT`` costs a speculative insertion per row (the caller falls back to the
# upsert should another writer, an accepted appeal, add one of the batch's customers
# meanwhile). Vouchers are another table: untouched. The counted form returns how many
# rows it inserted and updated and, with ``changed_ids``, the ids written, for the
# eligibility cache; the plain form needs no count before eligibility opens (the rows it
# inserted are the statement's row count), and skips returning every row through a CTE
# (a tenth of a batch's time).
_INSERT_BATCH = sql.SQL("""
INSERT INTO {registry} AS r (campaign_id, customer_id, {columns}, imported_at)
SELECT %(campaign_id)s, customer_id, {columns}, %(imported_at)s
FROM {rows}
WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid AND ({problem}) IS NULL
ORDER BY customer_id
{on_conflict}
""")
_COUNTED = sql.SQL("""
WITH loaded AS ({insert} RETURNING customer_id, xmax = 0 AS inserted)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
       array_agg(customer_id) FILTER (WHERE %(changed_ids)s)
FROM loaded
""")
_ON_CONFLICT = sql.SQL("""ON CONFLICT (campaign_id, customer_id) DO UPDATE
    SET {updates}, imported_at = EXCLUDED.imported_at
    WHERE ({existing}) IS DISTINCT FROM ({excluded})""")
_UPSERTED = ("account_status", "account_closed_at", "phone_hash")


def load_batch(registry_table: str, rows: sql.Identifier, *, exposed: bool, upsert: bool,
               counted: bool = True) -> sql.Composed:
    """The batch statement, the upsert or the plain INSERT, counted or not (a plain one
    only); with ``exposed`` (the file has the column) that column is written and compared
    too, without it a new row gets the column's default."""
    columns = [sql.Identifier(c) for c in (*_UPSERTED, *(("exposed",) if exposed else ()))]
    on_conflict = _ON_CONFLICT.format(
        updates=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=c) for c in columns),
        existing=sql.SQL(", ").join(sql.SQL("r.{}").format(c) for c in columns),
        excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in columns),
    )
    insert = _INSERT_BATCH.format(
        registry=sql.Identifier(registry_table), rows=rows, problem=PROBLEM,
        columns=sql.SQL(", ").join(columns), on_conflict=on_conflict if upsert else sql.SQL(""),
    )
    return _COUNTED.format(insert=insert) if counted or upsert else insert


# For the transaction only: the duplicate check's hash and each batch's sort stay in memory.
WORK_MEM = sql.SQL("SELECT set_config('work_mem', '256MB', true)")

DROP_TIMESTAMP_PARSER = sql.SQL("DROP FUNCTION pg_temp.registry_import_timestamptz(text)")


def drop_tables(*tables: sql.Identifier) -> sql.Composed:
    return sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(tables))


# The campaigns that have staging tables (of a running import, or of one that died).
STAGED_CAMPAIGNS = r"""
SELECT DISTINCT substring(relname FROM '^registry_import_(?:raw|rows)_(\d+)$')::bigint
FROM pg_class
WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace
  AND relname ~ '^registry_import_(raw|rows)_\d+$'
"""


# The campaign's import lease (``RegistryImportLease``). Taken when free or unrenewed for
# %(stale)s seconds; a row locked by a transaction of the running import is not waited for
# long (the caller sets a short lock_timeout): that import is alive.
TAKE_LEASE = """
INSERT INTO eligibility_registryimportlease AS l (campaign_id, holder, renewed_at)
VALUES (%(campaign_id)s, %(holder)s, clock_timestamp())
ON CONFLICT (campaign_id) DO UPDATE
SET holder = EXCLUDED.holder, renewed_at = EXCLUDED.renewed_at
WHERE l.renewed_at < clock_timestamp() - %(stale)s * interval '1 second'
RETURNING holder
"""
# No row: another import took the lease over (this one went unrenewed too long). CHECK_LEASE
# checks the same without renewing or locking; HOLD_LEASE also locks the row FOR SHARE,
# which keeps a takeover out until the COMMIT and which the import's other transactions
# share (taken as a transaction's last step only: held longer, it would keep the
# renewal, an UPDATE, waiting as long as any slice runs).
CHECK_LEASE = """
SELECT 1 FROM eligibility_registryimportlease
WHERE campaign_id = %(campaign_id)s AND holder = %(holder)s
"""
HOLD_LEASE = CHECK_LEASE + "FOR SHARE\n"
RENEW_LEASE = """
UPDATE eligibility_registryimportlease SET renewed_at = clock_timestamp()
WHERE campaign_id = %(campaign_id)s AND holder = %(holder)s
"""
RELEASE_LEASE = """
DELETE FROM eligibility_registryimportlease
WHERE campaign_id = %(campaign_id)s AND holder = %(holder)s
"""
