"""Phases of customer traffic on the full data: opening day's eligibility checks and
checkout, both over HTTP against the deployment's gunicorn, driven by wrk.

The server and the load generator are ``bench/serving.py``'s (bench_eligibility's and
bench_redemption's): gunicorn with the Dockerfile's workers and ``DEBUG`` off, serving the
project plus ``/bench/bare`` (a DRF endpoint with the customer JWT authentication and
nothing else: the baseline for a check). The rehearsal's cache entries carry a key
prefix of their own (``CACHE_KEY_PREFIX``), so clearing them leaves other Redis users'
keys alone.
"""

from __future__ import annotations

import random
import statistics

from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_redis import get_redis_connection
from serving import interleaved, load, post_load, serving

from accounts.identity import mint_customer_token
from accounts.services import create_principal
from vouchers.eligibility.cache import FENCE, answer_key
from vouchers.eligibility.selectors import _ELIGIBILITY
from vouchers.identifiers import public_voucher_id
from vouchers.models import Campaign

from .population import FULL_CUSTOMERS
from .report import Check, PhaseResult, Target, bytes_text

HIT_SET = 2_000
FIRST_CHECKS_PER_SECOND = 3_000  # more than this box serves: a first check is never repeated
CHECKOUTS_PER_SECOND = 1_500  # likewise, distinct vouchers for a spread checkout load
MEMORY_SAMPLES = 200


def server_log(ctx):
    return (ctx.workdir / "server.log").open("ab")


def tokens(customers: list[int]) -> dict[int, str]:
    return {c: mint_customer_token(c, ttl_seconds=3 * 3600) for c in customers}


def _explain_first_check(campaign_id: int, customer_id: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + _ELIGIBILITY,
                       {"campaign": campaign_id, "customer": customer_id})
        return [row[0] for row in cursor.fetchall()]


def _cached(slug: str, customers: list[int]) -> list[int]:
    """Those of ``customers`` whose answer Redis holds (not a fence)."""
    keys = {answer_key(slug, c): c for c in customers}
    found = cache.get_many(list(keys))
    return [keys[k] for k, v in found.items() if v is not None and v != FENCE]


def _answer_bytes(slug: str, customers: list[int]) -> float:
    """Mean ``MEMORY USAGE`` of these customers' cached answers (key and value)."""
    redis = get_redis_connection("default")
    sizes = [redis.memory_usage(cache.make_key(answer_key(slug, c))) for c in customers]
    sizes = [s for s in sizes if s]
    return statistics.mean(sizes) if sizes else 0.0


def _failed(*results: dict) -> int:
    return sum(r["non_2xx"] + r["socket_errors"] for r in results)


def registry_customers(pop, count: int, *, seed: int) -> list[int]:
    """``count`` distinct customers of the registry file, at random (no list of all)."""
    draw = min(pop.total, count + count // 50 + 10)  # late additions are 0.49 %
    ids = random.Random(seed).sample(range(1, pop.total + 1), draw)
    return [c for c in ids if not pop.is_late(c)][:count]


def phase_opening(ctx) -> PhaseResult:
    args, pop = ctx.args, ctx.population
    Campaign.objects.filter(pk=ctx.campaign.pk).update(eligibility_opens_at=timezone.now())
    slug = ctx.campaign.slug
    cache.delete_pattern("*")  # this rehearsal's prefix: earlier answers and throttle windows
    redis = get_redis_connection("default")
    memory_before = redis.info("memory")["used_memory"]
    hit_set = min(HIT_SET, pop.customers // 4)
    budget = min(int(args.seconds * FIRST_CHECKS_PER_SECOND), pop.customers - hit_set - 1)
    drawn = registry_customers(pop, hit_set + budget + 1, seed=7)
    hot, cold, explained = drawn[:hit_set], drawn[hit_set:-1], drawn[-1]
    plan = _explain_first_check(ctx.campaign.pk, explained)
    signed = tokens(hot + cold)
    check = f"/api/v1/campaigns/{slug}/eligibility"
    bare = [("/bench/bare", signed[c]) for c in hot]
    run = {"connections": args.connections, "listing": ctx.workdir / "requests.tsv"}
    with server_log(ctx) as log, serving(log) as port:
        load(port, bare, seconds=max(1.0, args.seconds / 3), **run)  # workers warm
        first = load(port, [(check, signed[c]) for c in cold], seconds=args.seconds, **run)
        load(port, [(check, signed[c]) for c in hot], seconds=args.seconds, **run)
        hot = _cached(slug, hot)  # those the warm-up reached: every check of them a hit
        hits = [(check, signed[c]) for c in hot]
        summed = interleaved(port, {"bare": bare, "hit": hits}, rounds=args.rounds,
                             seconds=args.seconds, **run)
    memory_after = redis.info("memory")["used_memory"]
    answers = sum(1 for _ in cache.iter_keys(answer_key(slug, "*")))
    per_answer = _answer_bytes(slug, hot[:MEMORY_SAMPLES])
    bare_r, hit_r = summed["bare"], summed["hit"]
    ratio = hit_r["per_second"] / bare_r["per_second"]
    # The top node's buffers (the first "Buffers:" line; planning's come last) and the time.
    execution = "; ".join(
        [next((line.strip() for line in plan if line.startswith("Execution Time")), "-"),
         next((line.strip() for line in plan if line.startswith("  Buffers:")), "")])
    wrapped = first["requests"] > len(cold)
    return PhaseResult(
        rows=first["requests"] + hit_r["requests"] + bare_r["requests"], unit="requests",
        seconds=first["seconds"] + args.seconds * 2,
        lines=[
            ("load", f"wrk, {args.connections} connections, {args.seconds:g} s each; bare "
                     f"and hit in {args.rounds} alternating round(s)"),
            ("first checks, cold cache (PostgreSQL, then Redis SET)",
             f"{first['per_second']:,.0f}/s, p50 {first['p50_ms']:.1f} ms, p99 "
             f"{first['p99_ms']:.1f} ms; {first['requests']:,} requests over {len(cold):,} "
             f"customers{' (the list wrapped: the rest were hits)' if wrapped else ''}"),
            ("hits, warm cache (Redis only)",
             f"{hit_r['per_second']:,.0f}/s, p50 {hit_r['p50_ms']:.1f} ms, p99 "
             f"{hit_r['p99_ms']:.1f} ms over {len(hot):,} customers"),
            ("bare DRF endpoint (JWT auth only)",
             f"{bare_r['per_second']:,.0f}/s, p50 {bare_r['p50_ms']:.1f} ms, p99 "
             f"{bare_r['p99_ms']:.1f} ms"),
            ("hit / bare", f"{ratio:.0%}"),
            ("Redis used_memory (whole server)", f"{bytes_text(memory_before)} -> "
             f"{bytes_text(memory_after)} ({answers:,} answers cached)"),
            ("one cached answer (MEMORY USAGE, mean)",
             f"{per_answer:,.0f} B; every customer at 33.7M: "
             f"{bytes_text(per_answer * FULL_CUSTOMERS)}"),
            ("first check's statement, EXPLAIN ANALYZE", execution or "-"),
        ],
        figures={"first": first, "hit": hit_r, "bare": bare_r, "hit_over_bare": ratio,
                 "hit_set": len(hot), "first_check_customers": len(cold),
                 "redis": {"used_memory_before": memory_before,
                           "used_memory_after": memory_after, "answers_cached": answers,
                           "bytes_per_answer": per_answer},
                 "explain_first_check": plan},
        targets=[
            Target.at_least("hits / bare DRF endpoint", ratio, 0.8),
            Target.below("hit p99", hit_r["p99_ms"], 100, "ms"),
            Target.below("first-check p99", first["p99_ms"], 100, "ms"),
        ],
        checks=[
            Check("every check answered 200 (no 4xx/5xx/socket error)", 0,
                  _failed(first, hit_r, bare_r)),
            Check("the hit set was cached by the warm-up", True, len(hot) > hit_set // 2,
                  detail={"cached": len(hot), "of": hit_set}),
        ],
    )


def spendable(campaign_id: int, count: int, *, seed: int, exclude: set[int] = frozenset()
              ) -> list[dict]:
    """Up to ``count`` active vouchers not spent yet, drawn at random over the whole table
    (ids drawn, then read by primary key: no scan)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM vouchers_voucher")
        lo, hi = cursor.fetchone()
        rng, found = random.Random(seed), {}
        for _ in range(6):
            want = count - len(found)
            if want <= 0 or lo is None:
                break
            ids = rng.sample(range(lo, hi + 1), min(hi - lo + 1, 2 * want + 100))
            # A join on the drawn ids, not ``id = ANY(...)``: without statistics the
            # planner scans the table testing each row against the whole array.
            cursor.execute(
                "SELECT v.id, v.customer_id, v.category, v.balance_krw, v.min_order_krw "
                "FROM unnest(%s::bigint[]) AS d(id) JOIN vouchers_voucher v ON v.id = d.id "
                "WHERE v.campaign_id = %s AND v.status = 'active' "
                "AND v.balance_krw = v.amount_krw", [ids, campaign_id])
            for row in cursor.fetchall():
                if row[0] not in exclude:
                    found[row[0]] = dict(zip(("id", "customer_id", "category", "balance",
                                              "min_order"), row, strict=True))
    return list(found.values())[:count]


def checkout_body(voucher: dict, k: int) -> tuple[str, dict]:
    """A checkout of the voucher on a matching order; every other one leaves a tenth of
    the (single-use) voucher unused, which is forfeited."""
    amount = voucher["balance"] - (voucher["balance"] // 10 if k % 2 else 0)
    category = voucher["category"]
    return ("/api/v1/redemptions", {
        "voucher_id": public_voucher_id(voucher["id"]), "customer_id": voucher["customer_id"],
        "order_id": f"rehearsal-{voucher['id']}", "amount_krw": amount,
        "order_total_krw": max(amount, voucher["min_order"]),
        "merchant_category": "eats" if category == "all" else category, "capture": True})


def checkout_principal() -> str:
    return create_principal(role="checkout", name=f"rehearsal-checkout-{random.random()}",
                            actor="rehearsal")[1]


_TOUCHED = """
WITH touched AS (SELECT DISTINCT unnest(%(ids)s::bigint[]) AS id),
postings AS (
    SELECT p.voucher_id,
           sum(p.amount_krw) FILTER (WHERE p.account IN ('liability', 'unclaimed')) AS held,
           -sum(p.amount_krw) FILTER (WHERE p.account IN ('redeemed', 'forfeited')) AS spent
    FROM vouchers_ledgerposting p JOIN touched t ON t.id = p.voucher_id
    GROUP BY p.voucher_id
),
redeemed AS (
    SELECT r.voucher_id, count(*) AS n, sum(r.amount_krw + r.forfeited_krw) AS won
    FROM redemption_redemption r JOIN touched t ON t.id = r.voucher_id
    GROUP BY r.voucher_id
)
SELECT count(*) FILTER (WHERE v.balance_krw <> v.amount_krw - coalesce(p.held, 0)),
       coalesce(sum(v.amount_krw - v.balance_krw), 0),
       coalesce(sum(p.spent), 0), coalesce(sum(r.won), 0),
       coalesce(sum(r.n), 0), count(*) FILTER (WHERE r.n > 1),
       coalesce(sum(r.n) FILTER (WHERE v.id = %(hot)s), 0)
FROM touched t JOIN vouchers_voucher v ON v.id = t.id
LEFT JOIN postings p ON p.voucher_id = v.id
LEFT JOIN redeemed r ON r.voucher_id = v.id
"""


def touched_vouchers(ids: list[int], hot: int) -> dict:
    """The vouchers a load touched, checked on their own rows: each balance against its
    amount less its holding postings (what verify_ledger checks, for these vouchers), the
    won gone from the balances against the redemptions and against the ledger, and how
    many redemptions each single-use voucher took."""
    with connection.cursor() as cursor:
        cursor.execute(_TOUCHED, {"ids": ids, "hot": hot})
        row = cursor.fetchone()
    names = ("mismatched_balances", "balance_drop_krw", "ledger_spent_krw",
             "redemptions_krw", "redemptions", "vouchers_redeemed_twice", "hot_redemptions")
    return dict(zip(names, (int(v) for v in row), strict=True))


def phase_checkout(ctx) -> PhaseResult:
    args = ctx.args
    budget = int(args.seconds * CHECKOUTS_PER_SECOND)
    vouchers = spendable(ctx.campaign.pk, budget + 1, seed=11)
    if len(vouchers) < 2:
        raise RuntimeError("no active vouchers left to check out: rehearse from an earlier "
                           "phase (--from import)")
    hot, spread = vouchers[0], vouchers[1:]
    token = checkout_principal()
    bodies = [checkout_body(v, k) for k, v in enumerate(spread)]
    run = {"clients": args.checkout_connections, "processes": 2, "seconds": args.seconds,
           "workdir": ctx.workdir}
    with server_log(ctx) as log, serving(log) as port:
        post_load(port, token, [("/api/v1/redemptions", {})], **{**run, "seconds": 1})  # warm
        spread_r = post_load(port, token, bodies, **run)
        hot_r = post_load(port, token, [checkout_body(hot, 0)], **run)
    touched = touched_vouchers([v["id"] for v in vouchers], hot["id"])
    created = spread_r["created"] + hot_r["created"]
    in_flight = 2 * args.checkout_connections  # answers wrk did not read at its deadline
    return PhaseResult(
        rows=spread_r["requests"] + hot_r["requests"], unit="checkouts",
        seconds=spread_r["seconds"] + hot_r["seconds"],
        lines=[
            ("load", f"wrk, {args.checkout_connections} connections, {args.seconds:g} s each"),
            ("spread: each checkout on another voucher",
             f"{spread_r['rps']:,.0f}/s, p50 {spread_r['p50_ms']:.1f} ms, p99 "
             f"{spread_r['p99_ms']:.1f} ms; {spread_r['created']:,} captured of "
             f"{spread_r['requests']:,} ({len(spread):,} vouchers listed)"),
            ("hot: every client on one single-use voucher",
             f"{hot_r['rps']:,.0f}/s, p50 {hot_r['p50_ms']:.1f} ms, p99 "
             f"{hot_r['p99_ms']:.1f} ms; {hot_r['created']} captured, the rest refused"),
            ("touched vouchers", f"{len(vouchers):,}: {touched['redemptions']:,} redemptions, "
             f"{touched['balance_drop_krw']:,} won spent or forfeited"),
        ],
        figures={"spread": spread_r, "hot": hot_r, "touched": touched,
                 "hot_voucher": hot["id"], "vouchers_listed": len(vouchers)},
        checks=[
            Check("no lost update: balance == amount - postings (touched)", 0,
                  touched["mismatched_balances"]),
            Check("won off balances == redemptions == ledger (touched)",
                  (touched["balance_drop_krw"],) * 2,
                  (touched["redemptions_krw"], touched["ledger_spent_krw"])),
            Check("single-use: no voucher redeemed twice", 0,
                  touched["vouchers_redeemed_twice"]),
            Check("hot voucher: exactly one redemption", (1, True),
                  (touched["hot_redemptions"], hot_r["created"] <= 1)),
            Check("201 answers <= redemptions <= 201s + answers in flight", True,
                  created <= touched["redemptions"] <= created + in_flight,
                  detail={"created": created, "rows": touched["redemptions"]}),
            Check("no server or socket error", 0, hot_r["socket_errors"]
                  + spread_r["socket_errors"]),
        ],
    )


def summarise_windows(windows: list[dict]) -> dict:
    """Checkout load windows as one: rate, p50 (median of the windows'), p99 and max (the
    worst window's)."""
    requests = sum(w["requests"] for w in windows)
    seconds = sum(w["seconds"] for w in windows)
    return {"requests": requests, "rps": requests / seconds if seconds else 0.0,
            "created": sum(w["created"] for w in windows),
            "non_2xx": sum(w["non_2xx"] for w in windows),
            "socket_errors": sum(w["socket_errors"] for w in windows),
            "p50_ms": statistics.median(w["p50_ms"] for w in windows) if windows else 0.0,
            "p99_ms": max((w["p99_ms"] for w in windows), default=0.0),
            "max_ms": max((w["max_ms"] for w in windows), default=0.0),
            "windows": len(windows)}

