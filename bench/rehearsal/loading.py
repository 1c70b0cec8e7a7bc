"""Phases that load the programme: the registry import, the issuance run, the late
additions with revocations.

Baselines are measured in the same run into tables of the same shape as the real ones
(``same_shape``: the columns, checks, indexes, identity and foreign keys, no rows), so a
baseline adds nothing to the rehearsal's data and leaves no dead rows behind; they are
dropped once timed. Issuance's baseline is taken at both ends of the voucher table's
growth: into an empty table of its shape, and into the table itself at the run's end
size, in a transaction rolled back (``raw_insert_at_end_size``).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from bench_import import raw_copy, raw_registry_insert
from bench_issuance import raw_insert
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm
from workers import celery_worker, wait_for_run

from accounts.services import create_principal
from vouchers.finance.selectors import campaign_summary
from vouchers.issuance import selectors, services
from vouchers.issuance.models import IssuanceRun, RunStatus
from vouchers.issuance.revocations import revoke_customer

from .checks import scalar
from .population import COMPONENTS
from .report import Check, PhaseResult, Target, rate_text, seconds_text

IMPORT_LIMIT_SECONDS = 5 * 60
ISSUANCE_LIMIT_SECONDS = 12 * 60

_PLANNER = """
SELECT s.n_distinct, c.reltuples, t.last_analyze, t.last_autoanalyze,
       t.n_mod_since_analyze, t.n_live_tup
FROM pg_class c
JOIN pg_stat_user_tables t ON t.relid = c.oid
LEFT JOIN pg_stats s ON s.schemaname = 'public' AND s.tablename = c.relname
                    AND s.attname = 'customer_id'
WHERE c.relname = 'vouchers_voucher'
"""


def same_shape(source: str, target: str) -> None:
    """``target``: an empty table shaped like ``source`` with the same keys (``LIKE ...
    INCLUDING ALL`` copies the columns, checks, indexes and identity; the foreign keys are
    added after, as deferrable as the source's). Names are trusted identifiers."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {target}")
        cursor.execute(f"CREATE TABLE {target} (LIKE {source} INCLUDING ALL)")
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = %s::regclass AND contype = 'f'", [source])
        for (definition,) in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {target} ADD {definition}")


def drop(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def import_file(campaign, path: Path) -> dict:
    """The real ``import_eligibility`` command, in this process (its progress bar shows on
    a terminal); its summary line and the registry count it prints last."""
    out = io.StringIO()
    started = time.perf_counter()
    call_command("import_eligibility", "--campaign", campaign.slug, str(path), stdout=out)
    seconds = time.perf_counter() - started
    lines = out.getvalue().strip().splitlines()
    words = lines[-2].replace(",", "").split()
    # "<rows> lines: <a> added, <u> updated, <k> unchanged, <i> invalid skipped"
    return {"seconds": seconds, "lines": int(words[0]), "added": int(words[2]),
            "updated": int(words[4]), "invalid": int(words[8]),
            "registry_rows": int(lines[-1])}


def operators() -> tuple[str, str]:
    """Two operations principals (the run's creator and its approver): their audit names."""
    stamp = time.time_ns()
    return tuple(create_principal(role="operations", name=f"rehearsal-{who}-{stamp}",
                                  actor="rehearsal")[0].audit_name for who in ("a", "b"))


def issuance_run(ctx, label: str) -> dict:
    """A real run: created by one operations principal, approved by a second, issued by a
    real worker (``celery -A config worker -c 2``), waited for with a progress bar.

    Runs an interrupted sitting left open are cancelled first, as an operator would (what
    they issued stays issued; the new run issues the rest)."""
    creator, approver = operators()
    open_runs = [RunStatus.PENDING_APPROVAL, *selectors.IN_PROGRESS]
    for stale in IssuanceRun.objects.filter(campaign=ctx.campaign, status__in=open_runs):
        services.cancel_run(run_id=stale.pk, actor=creator)
        print(f"  cancelled run {stale.pk}, left {stale.status} by an earlier sitting")
    log = ctx.workdir / f"worker-{label}.log"
    with celery_worker(concurrency=2, log_path=log, purge=True) as worker:
        created = timezone.now()
        started = time.perf_counter()
        run = services.create_run(campaign=ctx.campaign, actor=creator, dry_run_only=False)
        planned = time.perf_counter() - started
        services.approve_run(run_id=run.pk, actor=approver)
        with tqdm(total=run.eligible_customers, unit="customer", desc=label, disable=None,
                  leave=False) as bar:
            def show() -> None:
                bar.update(selectors.progress(selectors.get_run(run.pk)).customers_done - bar.n)

            status, peak = wait_for_run(run.pk, worker_pid=worker.pid, poll_seconds=0.5,
                                        on_poll=show)
        polled = time.perf_counter() - started
    run = selectors.get_run(run.pk)
    # End to end: from the run's creation to the moment the worker marked it finished (its
    # own timestamp, so the polling interval adds nothing).
    seconds = (run.finished_at - created).total_seconds() if run.finished_at else polled
    return {"run_id": str(run.pk), "status": status, "seconds": seconds,
            "plan_seconds": planned, "chunks": run.chunk_count,
            "eligible_customers": run.eligible_customers,
            "vouchers_issued": selectors.progress(run).vouchers_issued,
            "worker_peak_rss_mib": peak, "started_at": run.started_at,
            "failure": run.failure_detail}


def planner_statistics(registry_customers: int, since) -> dict:
    """What the planner believes about vouchers_voucher right after a run: the estimated
    number of distinct customer ids (``pg_stats.n_distinct``, negative: a fraction of the
    rows) against the true one, and whether the table was analysed since ``since``."""
    with connection.cursor() as cursor:
        cursor.execute(_PLANNER)
        n_distinct, reltuples, analysed, autoanalysed, modified, live = cursor.fetchone()
    estimate = None
    if n_distinct is not None:
        estimate = round(n_distinct if n_distinct >= 0 else -n_distinct * max(reltuples, 0))
    last = max((t for t in (analysed, autoanalysed) if t), default=None)
    return {"n_distinct": n_distinct, "estimated_customers": estimate,
            "true_customers": registry_customers, "reltuples": reltuples,
            "live_rows": live, "last_analyze": last, "modified_since_analyze": modified,
            "analysed_after_run": bool(last and since and last >= since)}


def phase_import(ctx) -> PhaseResult:
    pop, campaign = ctx.population, ctx.campaign
    path = ctx.workdir / "registry.csv"
    generated = pop.write_csv(path, late=False)
    expected = pop.expected(late=False)
    raw_copy_seconds = raw_copy(path)
    same_shape("vouchers_registryentry", "rehearsal_raw_registry")
    raw_insert_seconds = raw_registry_insert(table="rehearsal_raw_registry",
                                             campaign_id=campaign.pk)
    drop("rehearsal_raw_registry")
    done = import_file(campaign, path)
    raw_seconds = raw_copy_seconds + raw_insert_seconds
    n, seconds = pop.customers, done["seconds"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT account_status, count(*), count(*) FILTER (WHERE phone_hash IS NOT NULL), "
            "count(*) FILTER (WHERE account_closed_at IS NOT NULL) "
            "FROM vouchers_registryentry WHERE campaign_id = %s GROUP BY 1", [campaign.pk])
        found = {status: (count, hashed, closed_at)
                 for status, count, hashed, closed_at in cursor.fetchall()}
    by_status = {s: found.get(s, (0, 0, 0))[0] for s in ("active", "dormant", "closed")}
    return PhaseResult(
        rows=n, unit="rows", seconds=seconds,
        lines=[
            ("registry file", f"{n:,} rows, {generated['bytes'] / 2**20:,.1f} MiB, written in "
                              f"{seconds_text(generated['seconds'])}; {expected['closed']:,} "
                              f"closed, {expected['dormant']:,} dormant, "
                              f"{expected['no_phone']:,} without a phone"),
            ("import_eligibility (campaign not yet open)",
             f"{seconds_text(seconds)} = {rate_text(n, seconds, 'rows')}"),
            ("baseline: raw COPY into 4 text columns", seconds_text(raw_copy_seconds)),
            ("baseline: raw INSERT ... SELECT into a registry-shaped table",
             f"{seconds_text(raw_insert_seconds)} (same keys: primary key, phone index; "
             "no campaign check; cast only)"),
            ("import / (raw COPY + raw INSERT)", f"{raw_seconds / seconds:.0%} (all rows, "
                                                 "not a sample)"),
        ],
        figures={"generated": generated, "expected": expected, "import": done,
                 "baseline": {"copy_seconds": raw_copy_seconds,
                              "insert_seconds": raw_insert_seconds, "rows": n}},
        targets=[
            Target.within("import of the registry", seconds, IMPORT_LIMIT_SECONDS, pop.scale),
            Target.at_least("import speed / raw COPY + INSERT", raw_seconds / seconds, 0.5),
        ],
        checks=[
            Check("import: lines read, none invalid", (n, 0), (done["lines"], done["invalid"])),
            Check("registry by status == the file's", {s: expected[s] for s in by_status},
                  by_status),
            Check("closed accounts' phones, every typed format, kept hashed",
                  expected["closed"] - expected["closed_no_phone"],
                  found.get("closed", (0, 0, 0))[1]),
            Check("open and dormant accounts' phones not kept", 0,
                  sum(found.get(s, (0, 0, 0))[1] for s in ("active", "dormant"))),
            Check("closed accounts carry their closing time", expected["closed"],
                  found.get("closed", (0, 0, 0))[2]),
        ],
    )


def vouchers_of(campaign) -> int:
    return scalar("SELECT count(*) FROM vouchers_voucher WHERE campaign_id = %s",
                  [campaign.pk])


_SCRATCH_CAMPAIGN = """
INSERT INTO vouchers_campaign
SELECT (jsonb_populate_record(NULL::vouchers_campaign, to_jsonb(c) || jsonb_build_object(
    'id', nextval(pg_get_serial_sequence('vouchers_campaign', 'id')),
    'slug', c.slug || '-baseline'))).*
FROM vouchers_campaign c WHERE c.id = %(campaign_id)s
RETURNING id
"""
_SCRATCH_COMPONENTS = """
INSERT INTO vouchers_component
SELECT (jsonb_populate_record(NULL::vouchers_component, to_jsonb(c) || jsonb_build_object(
    'id', nextval(pg_get_serial_sequence('vouchers_component', 'id')),
    'campaign_id', %(scratch)s))).*
FROM vouchers_component c WHERE c.campaign_id = %(campaign_id)s
"""
_SCRATCH_REGISTRY = """
INSERT INTO vouchers_registryentry (campaign_id, customer_id, account_status,
                                    account_closed_at, phone_hash, imported_at, exposed)
SELECT %(scratch)s, customer_id, account_status, account_closed_at, phone_hash, imported_at,
       exposed
FROM vouchers_registryentry WHERE campaign_id = %(campaign_id)s AND customer_id <= %(last)s
"""


class _RolledBack(Exception):
    pass


def raw_insert_at_end_size(campaign_id: int, last_id: int) -> tuple[int, float]:
    """The baseline's INSERT ... SELECT into vouchers_voucher itself, as big as the run left
    it: the first customers' registry rows (to ``last_id``) copied to a scratch copy of the
    campaign, their vouchers inserted (only that is timed), then all of it rolled back.
    Returns (vouchers, seconds)."""
    params = {"campaign_id": campaign_id, "last": last_id}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_SCRATCH_CAMPAIGN, params)
            params["scratch"] = cursor.fetchone()[0]
            cursor.execute(_SCRATCH_COMPONENTS, params)
            cursor.execute(_SCRATCH_REGISTRY, params)
            started = time.perf_counter()
            raw_insert(params["scratch"], last_id)
            seconds = time.perf_counter() - started
            rows = scalar("SELECT count(*) FROM vouchers_voucher WHERE campaign_id = %s",
                          [params["scratch"]])
            raise _RolledBack
    except _RolledBack:
        pass
    return rows, seconds


def phase_issuance(ctx) -> PhaseResult:
    pop, campaign = ctx.population, ctx.campaign
    registry = scalar("SELECT count(*) FROM vouchers_registryentry WHERE campaign_id = %s",
                      [campaign.pk])
    before = vouchers_of(campaign)  # 0, unless an interrupted sitting issued some
    run = issuance_run(ctx, "issuance")
    planner = planner_statistics(registry, run["started_at"])
    # Baseline: one INSERT ... SELECT of the same rows (or the first S customers' of them)
    # into an empty voucher-shaped table, and into the voucher table at the run's end size.
    # The run grows the table from one size to the other: the rate of one statement
    # doing the same is the harmonic mean of the two (equal rows at each end's cost).
    sample = min(registry, ctx.args.baseline_customers)
    with connection.cursor() as cursor:
        cursor.execute("SELECT customer_id FROM vouchers_registryentry WHERE campaign_id = %s "
                       "ORDER BY customer_id OFFSET %s LIMIT 1", [campaign.pk, sample - 1])
        last_id = cursor.fetchone()[0]
    same_shape("vouchers_voucher", "rehearsal_raw_voucher")
    started = time.perf_counter()
    raw_insert(campaign.pk, last_id, table="rehearsal_raw_voucher")
    raw_seconds = time.perf_counter() - started
    raw_rows = scalar("SELECT count(*) FROM rehearsal_raw_voucher")
    drop("rehearsal_raw_voucher")
    end_rows, end_seconds = raw_insert_at_end_size(campaign.pk, last_id)
    grown = 2 / (raw_seconds / raw_rows + end_seconds / end_rows)
    vouchers, seconds = run["vouchers_issued"], run["seconds"]
    rate = vouchers / seconds
    speed = rate / grown
    sampled = ("all the same rows" if sample == registry else
               f"a sample: the first {sample:,} customers' vouchers")
    estimate = planner["estimated_customers"]
    planner_ok = bool(planner["analysed_after_run"] and estimate
                      and registry / 2 <= estimate <= registry * 2)
    return PhaseResult(
        rows=vouchers, unit="vouchers", seconds=seconds,
        lines=[
            ("issuance run (worker -c 2; created by ops A, approved by ops B)",
             f"{seconds_text(seconds)} end to end = {rate_text(vouchers, seconds, 'vouchers')}"
             f"; {run['chunks']:,} chunks, planning {seconds_text(run['plan_seconds'])}"),
            ("worker peak RSS (main + pool, VmHWM)", f"{run['worker_peak_rss_mib']:,.0f} MiB"),
            ("baseline: one raw INSERT ... SELECT into an empty voucher-shaped table",
             f"{raw_rows:,} vouchers in {seconds_text(raw_seconds)} = "
             f"{rate_text(raw_rows, raw_seconds, 'vouchers')} ({sampled}); the run at "
             f"{rate / (raw_rows / raw_seconds):.0%} of it"),
            ("baseline: the same INSERT into vouchers_voucher at the run's end size",
             f"{end_rows:,} vouchers in {seconds_text(end_seconds)} = "
             f"{rate_text(end_rows, end_seconds, 'vouchers')} (rolled back); the run at "
             f"{rate / (end_rows / end_seconds):.0%} of it"),
            ("baseline over the run's growth (harmonic mean of the two)",
             f"{grown:,.0f} vouchers/s; the run at {speed:.0%} of it"),
            ("planner: vouchers_voucher.customer_id n_distinct",
             f"{planner['n_distinct']} -> {estimate if estimate is not None else 'none'} "
             f"estimated vs {registry:,} true; analysed after the run: "
             f"{'yes' if planner['analysed_after_run'] else 'no'} (last "
             f"{planner['last_analyze'] or 'never'}, {planner['modified_since_analyze']:,} "
             "rows changed since)"),
        ],
        figures={"run": run, "planner": planner,
                 "baseline": {"vouchers": raw_rows, "seconds": raw_seconds,
                              "sample_customers": sample, "end_size_vouchers": end_rows,
                              "end_size_seconds": end_seconds, "over_growth_rate": grown}},
        targets=[
            Target.within("issuance end to end", seconds, ISSUANCE_LIMIT_SECONDS, pop.scale),
            Target.at_least("issuance speed / one raw INSERT ... SELECT (same sizes)", speed,
                            1.0),
            Target("planner statistics right after the run", "analysed, n_distinct within 2x",
                   f"{estimate if estimate is not None else 'none'} vs {registry:,}", "",
                   planner_ok),
        ],
        checks=[
            Check("run completed", RunStatus.COMPLETED, run["status"], detail=run["failure"]),
            Check("run's eligible customers", registry, run["eligible_customers"]),
            Check("vouchers issued (before the run + by it)", len(COMPONENTS) * registry,
                  before + vouchers),
        ],
    )


def phase_additions(ctx) -> PhaseResult:
    pop, campaign = ctx.population, ctx.campaign
    path = ctx.workdir / "late-additions.csv"
    generated = pop.write_csv(path, late=True)
    campaign.refresh_from_db()
    opened = campaign.eligibility_opens_at <= timezone.now()
    done = import_file(campaign, path)
    creator, _ = operators()
    revoked = pop.revoked_ids()
    started = time.perf_counter()
    made = 0
    for customer_id in tqdm(revoked, unit="revocation", desc="revocations", disable=None,
                            leave=False):
        made += revoke_customer(campaign=campaign, customer_id=customer_id,
                                reason="rehearsal: account found invalid", actor=creator)[1]
    revoke_seconds = time.perf_counter() - started
    registry = done["registry_rows"]
    run = issuance_run(ctx, "additions")
    late = pop.late_sql("registry_customer_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE NOT {late} AND issuance_run_id = %s), "
            f"count(*) FILTER (WHERE {late}) FROM vouchers_voucher WHERE campaign_id = %s",
            [run["run_id"], campaign.pk])
        to_others, late_vouchers = cursor.fetchone()
        cursor.execute("SELECT count(*) FILTER (WHERE v.status <> 'revoked'), count(*) "
                       "FROM unnest(%s::bigint[]) AS r(id) JOIN vouchers_voucher v "
                       "ON v.campaign_id = %s AND v.registry_customer_id = r.id",
                       [revoked, campaign.pk])
        unrevoked, revoked_vouchers = cursor.fetchone()
        cursor.execute("SELECT count(*), coalesce(sum(revoked_krw), 0) FROM "
                       "issuance_revocation WHERE campaign_id = %s", [campaign.pk])
        revocations, revoked_krw = (int(v) for v in cursor.fetchone())
    exclusions = scalar("SELECT count(*) FROM vouchers_exclusion WHERE campaign_id = %s "
                        "AND lifted_at IS NULL", [campaign.pk])
    summary = campaign_summary(campaign)
    a, r = pop.additions, pop.revocations
    return PhaseResult(
        rows=run["vouchers_issued"], unit="vouchers", seconds=run["seconds"],
        lines=[
            ("late file", f"{a:,} customers ({a / pop.customers:.2%} of the registry), "
                          f"{generated['bytes'] / 2**10:,.0f} KiB"),
            ("import_eligibility of the late file "
             + ("(campaign open: answers fenced)" if opened else "(campaign not open yet)"),
             f"{seconds_text(done['seconds'])} = {rate_text(a, done['seconds'], 'rows')}"),
            ("revocations through the service", f"{r:,} in {seconds_text(revoke_seconds)} = "
                                                f"{rate_text(r, revoke_seconds, 'revocations')}"),
            ("run issuing the additions (worker -c 2)",
             f"{seconds_text(run['seconds'])}: {run['vouchers_issued']:,} vouchers, "
             f"{run['chunks']:,} chunks over the {run['eligible_customers']:,} customers still "
             "owed (planned alone; each chunk merges its range's two indexes once)"),
            ("worker peak RSS", f"{run['worker_peak_rss_mib']:,.0f} MiB"),
        ],
        figures={"generated": generated, "import": done, "run": run,
                 "revocations": {"count": r, "made": made, "seconds": revoke_seconds,
                                 "revoked_krw": revoked_krw}},
        checks=[
            Check("late file: none invalid, registry grown by it", (0, pop.customers + a),
                  (done["invalid"], registry)),
            Check("run completed", RunStatus.COMPLETED, run["status"], detail=run["failure"]),
            Check("run's customers == the late file's (only they are owed)", a,
                  run["eligible_customers"]),
            Check(f"late customers hold {len(COMPONENTS)} vouchers each; the run issued "
                  "to no one else", (len(COMPONENTS) * a, 0), (late_vouchers, to_others)),
            Check("revoked customers' vouchers all revoked", (len(COMPONENTS) * r, 0),
                  (revoked_vouchers, unrevoked)),
            Check("revocation rows and exclusions in force", (r, r), (revocations, exclusions)),
            Check("summary's revoked won == revocations' won", revoked_krw,
                  summary["revoked_krw"]),
        ],
    )
