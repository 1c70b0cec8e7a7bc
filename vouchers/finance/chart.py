"""A server-rendered SVG chart: daily redemptions as bars, outstanding liability as a line.

Plain numbers for the template, so the page needs no JavaScript and no build step.
"""

from __future__ import annotations

from typing import Any

WIDTH, HEIGHT, PAD = 720, 220, 30


def chart(series: list[dict[str, Any]]) -> dict[str, Any]:
    n = max(len(series), 1)
    step = (WIDTH - 2 * PAD) / n
    top_bar = max((d["redeemed_krw"] for d in series), default=0) or 1
    top_line = max((d["outstanding_krw"] for d in series), default=0) or 1
    usable = HEIGHT - 2 * PAD

    bars = []
    points = []
    for i, day in enumerate(series):
        x = PAD + i * step
        height = usable * max(day["redeemed_krw"], 0) / top_bar
        bars.append({"x": round(x + step * 0.15, 1), "y": round(HEIGHT - PAD - height, 1),
                     "width": round(step * 0.7, 1), "height": round(height, 1),
                     "title": f"{day['day']}: {day['redeemed_krw']:,} won redeemed"})
        y = HEIGHT - PAD - usable * day["outstanding_krw"] / top_line
        points.append(f"{x + step / 2:.1f},{y:.1f}")
    return {
        "width": WIDTH, "height": HEIGHT, "pad": PAD, "bars": bars,
        "line": " ".join(points), "max_redeemed": top_bar, "max_outstanding": top_line,
        "first_day": series[0]["day"] if series else None,
        "last_day": series[-1]["day"] if series else None,
    }
