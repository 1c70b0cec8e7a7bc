"""Runs the selected phases in order on the rehearsal database, each measured, checked,
printed and recorded before the next begins."""

from __future__ import annotations

import datetime as dt
import os
import traceback
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from common import ROOT
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from vouchers.campaigns.services import ComponentSpec, create_campaign
from vouchers.models import Campaign

from . import checks, closing, loading, meter, traffic
from .population import COMPONENTS, Population
from .report import Check, PhaseResult, Record, Target, bytes_text, render, seconds_text, table

SLUG = "rehearsal"
PHASES = {
    "import": loading.phase_import,
    "issuance": loading.phase_issuance,
    "opening": traffic.phase_opening,
    "checkout": traffic.phase_checkout,
    "additions": loading.phase_additions,
    "expiry": closing.phase_expiry,
    "finance": closing.phase_finance,
}
DATABASE_LIMIT_GB = 60
# What grows with the number of customers; the rest (redemptions, idempotency keys, audit
# events: the traffic a rehearsal sends; Django's own tables) is taken as it is.
CUSTOMER_RELATIONS = ("vouchers_registryentry", "vouchers_voucher", "vouchers_ledgerposting",
                      "vouchers_ledgertransaction", "issuance_issuancechunk",
                      "issuance_issuednotice")
SETTINGS = (
    "server_version", "shared_buffers", "effective_cache_size", "work_mem",
    "maintenance_work_mem", "max_wal_size", "min_wal_size", "checkpoint_timeout",
    "checkpoint_completion_target", "wal_compression", "wal_buffers", "synchronous_commit",
    "fsync", "full_page_writes", "autovacuum", "autovacuum_max_workers",
    "autovacuum_vacuum_scale_factor", "autovacuum_vacuum_insert_scale_factor",
    "autovacuum_analyze_scale_factor", "autovacuum_vacuum_cost_limit", "log_lock_waits",
    "deadlock_timeout", "random_page_cost", "effective_io_concurrency",
    "max_parallel_workers_per_gather", "max_parallel_maintenance_workers", "jit",
)


@dataclass
class Context:
    args: object
    population: Population
    url: str
    workdir: Path
    campaign: Campaign | None = None


def settings_in_force() -> dict:
    """The PostgreSQL settings the figures were measured under, and where each came from
    (bench/rehearsal_pg.conf applied shows as its conf.d file)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, current_setting(name), setting, unit, source, sourcefile "
                       "FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)])
        return {name: {"value": value, "setting": setting, "unit": unit, "source": source,
                       "file": sourcefile}
                for name, value, setting, unit, source, sourcefile in cursor.fetchall()}


def machine() -> dict:
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                  .splitlines() if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "memory_gib": round(memory / 2**20, 1),
            "load_average": os.getloadavg()}


def new_campaign() -> Campaign:
    """The programme's campaign: four single-use vouchers valid to one fixed date (90 days
    out, end of that day in Seoul); eligibility opens tomorrow (the opening phase opens it)."""
    seoul = zoneinfo.ZoneInfo("Asia/Seoul")
    day = (timezone.now().astimezone(seoul) + dt.timedelta(days=90)).date()
    expires = dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=seoul)
    return create_campaign(
        slug=SLUG, name="Rehearsal: breach compensation at full size",
        eligibility_opens_at=timezone.now() + dt.timedelta(days=1), actor="rehearsal",
        components=[ComponentSpec(category=category, amount_krw=amount, expires_at=expires,
                                  min_order_krw=min_order, single_use=True)
                    for category, amount, min_order in COMPONENTS])


def prepare(ctx: Context, record: Record, fresh: bool) -> None:
    if fresh:
        call_command("migrate", verbosity=0)
        record.data = {"customers": ctx.population.customers, "phases": {}, "sittings": [],
                       "ok": True, "empty_database_bytes": meter.sizes()["database"]}
        ctx.campaign = new_campaign()
        return
    ctx.campaign = Campaign.objects.filter(slug=SLUG).first()
    if ctx.campaign is None:
        raise SystemExit(f"no rehearsal campaign in {connection.settings_dict['NAME']}: "
                         "start with the import phase")
    file_rows, _ = checks.registry_counts(ctx.campaign, ctx.population)
    if file_rows != ctx.population.customers:
        raise SystemExit(f"the rehearsal database holds a registry of {file_rows:,} "
                         f"customers, not {ctx.population.customers:,}: give --customers "
                         f"{file_rows} or start with the import phase")


def database_target(measured: dict, population: Population) -> Target:
    """The database's size at 33.7M: the relations that grow with the customers scaled,
    the rest as measured."""
    sizes = measured["sizes"]
    return Target.size_within("total database size", sizes["database"], DATABASE_LIMIT_GB,
                              population.scale,
                              fixed_bytes=sizes["database"] - sizes["summed_bytes"])


def run_phase(ctx: Context, record: Record, name: str, number: int, of: int) -> bool:
    print(f"\n-- phase {number}/{of}: {name} ...", flush=True)
    with meter.Meter(ctx.url) as measuring:
        try:
            result = PHASES[name](ctx)
        except Exception as exc:
            traceback.print_exc()
            result = PhaseResult(rows=0, unit="-", seconds=0.0, checks=[
                Check(f"phase {name} ran to the end", "no error",
                      f"{type(exc).__name__}: {exc}")])
    measured = measuring.figures()
    measured["sizes"] = meter.sizes(summed=CUSTOMER_RELATIONS)
    print(f"   checking the invariants (phase took {seconds_text(measured['wall_seconds'])})"
          " ...", flush=True)
    try:
        invariants, checks_seconds = checks.invariants(ctx.campaign, ctx.population)
    except Exception as exc:
        traceback.print_exc()
        invariants, checks_seconds = [Check("invariants could be read", "no error",
                                            f"{type(exc).__name__}: {exc}")], 0.0
    result.checks += invariants
    result.targets.append(database_target(measured, ctx.population))
    print(render(name, number, of, ctx.population.customers, result, measured,
                 checks_seconds), flush=True)
    record.phase(name, result, measured, checks_seconds)
    return all(c.ok for c in result.checks)


def summary(record: Record) -> str:
    rows = []
    for name in PHASES:
        phase = record.data["phases"].get(name)
        if phase is None:
            continue
        measured = phase["measured"]
        targets = phase["targets"]
        rate = (f"{phase['rows_per_second']:,.0f} {phase['unit']}/s"
                if phase["rows_per_second"] else "-")
        rows.append((name, seconds_text(measured["wall_seconds"]), rate,
                     bytes_text(measured["wal_bytes"]), f"{measured['postgres_cpu_share']:.0%}",
                     bytes_text(measured["sizes"]["database"]),
                     f"{sum(t['passed'] for t in targets)}/{len(targets)}",
                     "ok" if phase["ok"] else "FAILED"))
    return table(("phase", "wall", "main step", "WAL", "PG CPU", "database", "targets met",
                  "checks"), rows)


def run(args, phases: list[str], url: str, fresh: bool) -> int:
    population = Population(args.customers)
    workdir = Path(args.workdir or ROOT / "var" / "rehearsal" / str(args.customers))
    workdir.mkdir(parents=True, exist_ok=True)
    record = Record(Path(args.output or ROOT / "var" / "rehearsal" / f"{args.customers}.json"),
                    args.customers)
    ctx = Context(args=args, population=population, url=url, workdir=workdir)
    prepare(ctx, record, fresh)
    record.data.update(
        database=connection.settings_dict["NAME"], campaign=SLUG,
        population={"customers": population.customers, "additions": population.additions,
                    "revocations": population.revocations},
        settings=settings_in_force())
    record.data["sittings"].append({
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "phases": phases, "options": {k: str(v) for k, v in vars(args).items()},
        "machine": machine()})
    record.save()
    in_force = record.data["settings"]
    applied = any("rehearsal" in (s["file"] or "") for s in in_force.values())
    shown = ", ".join(f"{name} {in_force[name]['value']}"
                      for name in ("shared_buffers", "max_wal_size", "checkpoint_timeout",
                                   "maintenance_work_mem", "autovacuum") if name in in_force)
    print(f"rehearsal of {population.customers:,} customers (+{population.additions:,} late, "
          f"{population.revocations:,} revoked) on database {record.data['database']}; "
          f"phases: {', '.join(phases)}\nPostgreSQL: {shown}; the rehearsal tuning "
          f"(bench/rehearsal_pg.conf) {'applied' if applied else 'NOT applied'}\n"
          f"record: {record.path}", flush=True)
    ok = True
    for number, name in enumerate(phases, PHASE_NUMBERS[phases[0]]):
        if not run_phase(ctx, record, name, number, len(PHASES)):
            ok = False
            print(f"\nphase {name}: a check FAILED; the later phases would build on it: "
                  "stopping.", flush=True)
            break
    print("\n" + summary(record), flush=True)
    print(f"\n{'all checks passed' if ok else 'CHECKS FAILED'}; figures in {record.path}")
    return 0 if ok else 1


PHASE_NUMBERS = {name: number for number, name in enumerate(PHASES, 1)}
