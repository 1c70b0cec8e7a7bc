"""What a phase hands back, how it is printed and where it is kept.

Targets are the issue's, stated for the real programme (33.7M customers). A rehearsal
of fewer customers prints each time and size target beside its figure scaled linearly
to 33.7M (``at 33.7M``); ratios and latencies do not scale and are judged as measured.
A missed target is reported, not fatal; a failed check (an invariant) is fatal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def seconds_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def bytes_text(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def rate_text(count: float, seconds: float, unit: str) -> str:
    return f"{count / seconds:,.0f} {unit}/s" if seconds > 0 else "-"


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    full_size: str
    passed: bool

    @classmethod
    def within(cls, name: str, seconds: float, limit_seconds: float, scale: float
               ) -> Target:
        """A time limit at full size: ``seconds`` measured, scaled by ``scale``."""
        full = seconds * scale
        return cls(name, f"< {seconds_text(limit_seconds)}", seconds_text(seconds),
                   seconds_text(full) if scale != 1 else "", full < limit_seconds)

    @classmethod
    def size_within(cls, name: str, n_bytes: float, limit_gb: float, scale: float, *,
                    fixed_bytes: float = 0) -> Target:
        """A size limit in GB (10^9 bytes) at full size: what grows with the customers
        (``n_bytes - fixed_bytes``) scaled by ``scale``, plus what does not (``fixed_bytes``)."""
        full = fixed_bytes + (n_bytes - fixed_bytes) * scale
        return cls(name, f"< {limit_gb:g} GB", bytes_text(n_bytes),
                   bytes_text(full) if scale != 1 else "", full < limit_gb * 1e9)

    @classmethod
    def at_least(cls, name: str, ratio: float, minimum: float) -> Target:
        return cls(name, f">= {minimum:.0%}", f"{ratio:.1%}", "", ratio >= minimum)

    @classmethod
    def below(cls, name: str, value: float, limit: float, unit: str) -> Target:
        return cls(name, f"< {limit:g} {unit}", f"{value:,.1f} {unit}", "", value < limit)


@dataclass
class Check:
    """An invariant: ``ok`` is whether it holds (given, or expected == actual)."""

    name: str
    expected: Any
    actual: Any
    ok: bool | None = None
    detail: Any = None

    def __post_init__(self) -> None:
        if self.ok is None:
            self.ok = self.expected == self.actual


@dataclass
class PhaseResult:
    """``rows`` of ``unit`` done by the phase's main work in ``seconds`` (for rows/s);
    ``lines``: (figure, value) to print; ``figures``: the same and more, for the JSON."""

    rows: int
    unit: str
    seconds: float
    lines: list[tuple[str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


def table(headers: tuple[str, ...], rows: list[tuple], indent: str = "  ") -> str:
    cells = [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
             .rstrip(), indent + "  ".join("-" * w for w in widths)]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def render(name: str, number: int, of: int, customers: int, result: PhaseResult,
           measured: dict, checks_seconds: float) -> str:
    """The phase's tables: its figures, the common measurements, targets, checks."""
    title = f"== phase {number}/{of}: {name} ({customers:,} customers) "
    out = [title + "=" * max(0, 92 - len(title))]
    cpu = measured["cpu_seconds"]
    sizes = measured["sizes"]
    common = [
        ("phase wall time", seconds_text(measured["wall_seconds"])),
        (f"{result.unit} in the main step", f"{result.rows:,} in {seconds_text(result.seconds)}"
         f" = {rate_text(result.rows, result.seconds, result.unit)}"),
        ("WAL written (cluster-wide)", bytes_text(measured["wal_bytes"])),
        ("PostgreSQL share of CPU", f"{measured['postgres_cpu_share']:.0%} (PostgreSQL "
         f"{cpu['postgres']:.1f} s, our processes {cpu['ours']:.1f} s; machine busy "
         f"{cpu['machine_busy']:.1f} s)"),
        ("peak RSS of our processes", f"{measured['peak_rss_mib']:,.0f} MiB in all; largest: "
         + ", ".join(f"{kind} {mib:,.0f} MiB"
                     for kind, mib in sorted(measured["peak_rss_mib_by_process"].items()))),
        ("database size", bytes_text(sizes["database"])),
        *((f"  {relation}", f"table {bytes_text(s['table'])}, indexes "
                            f"{bytes_text(s['indexes'])}")
          for relation, s in sizes["tables"].items()),
    ]
    out.append(table(("figure", "value"), [*result.lines, *common]))
    if result.targets:
        out.append("")
        out.append(table(("target (for 33.7M customers)", "goal", "measured", "at 33.7M",
                          "result"),
                         [(t.name, t.goal, t.measured, t.full_size,
                           "PASS" if t.passed else "MISS") for t in result.targets]))
    out.append("")
    out.append(table((f"check ({seconds_text(checks_seconds)})", "expected", "actual", "ok"),
                     [(c.name, _short(c.expected), _short(c.actual),
                       "ok" if c.ok else "FAILED") for c in result.checks]))
    return "\n".join(out)


def _short(value: Any) -> str:
    text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    """JSON-ready: mapping keys as text (wrk's answer classes are tuples)."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Record:
    """The machine-readable record, rewritten whole (atomically) after every phase;
    phases run earlier (another sitting, ``--from``) keep their entries."""

    def __init__(self, path: Path, customers: int) -> None:
        self.path = path
        self.data: dict[str, Any] = {"customers": customers, "phases": {}, "sittings": []}
        if path.exists():
            existing = json.loads(path.read_text())
            if existing.get("customers") == customers:
                self.data = existing

    def phase(self, name: str, result: PhaseResult, measured: dict,
              checks_seconds: float) -> None:
        self.data["phases"][name] = {
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rows": result.rows, "unit": result.unit, "seconds": result.seconds,
            "rows_per_second": result.rows / result.seconds if result.seconds else None,
            "figures": result.figures, "measured": measured,
            "targets": [asdict(t) for t in result.targets],
            "checks": [asdict(c) for c in result.checks], "checks_seconds": checks_seconds,
            "ok": all(c.ok for c in result.checks),
        }
        self.data["ok"] = all(p["ok"] for p in self.data["phases"].values())
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(_plain(self.data), indent=2, default=str) + "\n")
        os.replace(partial, self.path)
