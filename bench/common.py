"""What the benchmarks share: Django set up against ``DATABASE_URL``, a campaign with a
generated registry written in one statement, a free port for a server, and the same
database through PgBouncer.

Import it before anything of the project's (it calls ``django.setup()``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

# Customers 1..n; with closed_every = k > 0, every k-th account is closed.
_CAMPAIGN = """
WITH c AS (
    INSERT INTO vouchers_campaign (slug, name, eligibility_opens_at, created_at, created_by)
    VALUES (%(slug)s, %(slug)s, now() - interval '1 day', now(), 'bench') RETURNING id
), comp AS (
    INSERT INTO vouchers_component
        (campaign_id, category, amount_krw, expires_at, min_order_krw, single_use)
    SELECT c.id, v.category, v.amount, now() + interval '90 days', 0, v.single_use
    FROM c, unnest(%(categories)s::text[], %(amounts)s::bigint[], %(single_use)s::bool[])
         AS v(category, amount, single_use)
)
INSERT INTO vouchers_registryentry (campaign_id, customer_id, account_status, imported_at)
SELECT c.id, g,
       CASE WHEN %(closed_every)s > 0 AND g %% %(closed_every)s = 0
            THEN 'closed' ELSE 'active' END, now()
FROM c, generate_series(1, %(n)s) g
RETURNING campaign_id
"""


def make_campaign(slug: str, n: int, *, closed_every: int = 7,
                  components: tuple[tuple[str, int, bool], ...] = (("all", 50_000, False),),
                  ) -> int:
    """A campaign of ``n`` registry customers and the given (category, won, single-use)
    components, open since yesterday; returns its id."""
    categories, amounts, single_use = (list(column) for column in zip(*components, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(_CAMPAIGN, {"slug": slug, "n": n, "closed_every": closed_every,
                                   "categories": categories, "amounts": amounts,
                                   "single_use": single_use})
        campaign_id = cursor.fetchone()[0]
        cursor.execute("ANALYZE vouchers_registryentry")
    return campaign_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def through_pgbouncer(pool_size: int = 20) -> Iterator[str]:
    """``DATABASE_URL``'s database through a PgBouncer of this run's own, in transaction
    pooling mode as deployed (``tests.processes.PgBouncer``, which the topology tests run;
    ``make pgbouncer`` installs it): yields its URL, stops it after."""
    from tests.processes import PgBouncer

    database = connection.settings_dict
    bouncer = PgBouncer((database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)),
                        pool_size=pool_size)
    try:
        yield bouncer.url(database["NAME"])
    finally:
        bouncer.stop()
