"""Charts as inline SVG, drawn on the server: no script, no CDN, nothing fetched.

Values are Decimals in display units; each chart scales its own axis. Bars may link
somewhere (a month's movements), so a click works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 720, 240, 56, 24, 26
COLOURS = {
    "new": "#2e7d32",
    "expansion": "#66bb6a",
    "reactivation": "#a5d6a7",
    "contraction": "#ef9a9a",
    "churn": "#c62828",
}
PALETTE = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[Decimal | None]
    colour: str


def _scale(low: Decimal, high: Decimal) -> tuple[Decimal, Decimal]:
    if low == high:
        high = low + 1
    return min(low, Decimal(0)), max(high, Decimal(0))


def _y(value: Decimal, low: Decimal, high: Decimal) -> float:
    span = float(high - low) or 1.0
    return PAD_TOP + (HEIGHT - PAD_TOP - PAD_BOTTOM) * (1 - float(value - low) / span)


def _frame(labels: Sequence[str], low: Decimal, high: Decimal, title: str) -> list[str]:
    step = (WIDTH - PAD_LEFT) / max(len(labels), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<line x1="{PAD_LEFT}" x2="{WIDTH}" y1="{_y(Decimal(0), low, high):.1f}" '
        f'y2="{_y(Decimal(0), low, high):.1f}" class="axis"/>',
        f'<text x="{PAD_LEFT}" y="16" class="title">{escape(title)}</text>',
        f'<text x="4" y="{PAD_TOP + 8}" class="tick">{escape(_short(high))}</text>',
        f'<text x="4" y="{HEIGHT - PAD_BOTTOM}" class="tick">{escape(_short(low))}</text>',
    ]
    for i, label in enumerate(labels):
        x = PAD_LEFT + step * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 6}" class="tick" text-anchor="middle">'
            f"{escape(label[2:])}</text>"
        )
    return parts


def _short(value: Decimal) -> str:
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if magnitude >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if magnitude >= 10 else f"{value:.2f}"


def lines(labels: Sequence[str], series: Sequence[Series], title: str) -> str:
    """One line per series over the months."""
    known = [v for s in series for v in s.values if v is not None]
    low, high = _scale(min(known, default=Decimal(0)), max(known, default=Decimal(1)))
    parts = _frame(labels, low, high, title)
    step = (WIDTH - PAD_LEFT) / max(len(labels), 1)
    for s in series:
        points = [
            f"{PAD_LEFT + step * (i + 0.5):.1f},{_y(v, low, high):.1f}"
            for i, v in enumerate(s.values)
            if v is not None
        ]
        parts.append(
            f'<polyline fill="none" stroke="{s.colour}" stroke-width="2" '
            f'points="{" ".join(points)}" data-series="{escape(s.name)}"/>'
        )
        for i, v in enumerate(s.values):
            if v is not None:
                x, y = PAD_LEFT + step * (i + 0.5), _y(v, low, high)
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{s.colour}">'
                    f"<title>{escape(labels[i])} {escape(s.name)}: {v}</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def bars(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    *,
    stacked: bool,
    links: Sequence[str] | None = None,
) -> str:
    """Bars per month: stacked (positives up, negatives down) or side by side."""
    if stacked:
        ups = [
            sum((v for s in series if (v := s.values[i]) and v > 0), Decimal(0))
            for i in range(len(labels))
        ]
        downs = [
            sum((v for s in series if (v := s.values[i]) and v < 0), Decimal(0))
            for i in range(len(labels))
        ]
        low, high = _scale(min(downs, default=Decimal(0)), max(ups, default=Decimal(1)))
    else:
        known = [v for s in series for v in s.values if v is not None]
        low, high = _scale(min(known, default=Decimal(0)), max(known, default=Decimal(1)))
    parts = _frame(labels, low, high, title)
    step = (WIDTH - PAD_LEFT) / max(len(labels), 1)
    width = step * (0.7 if stacked else 0.8 / max(len(series), 1))
    for i, label in enumerate(labels):
        group = [f'<g class="month" data-month="{escape(label)}">']
        up = down = Decimal(0)
        for j, s in enumerate(series):
            value = s.values[i] or Decimal(0)
            if stacked:
                base = up if value >= 0 else down
                top = base + value
                up, down = (top, down) if value >= 0 else (up, top)
                x = PAD_LEFT + step * i + step * 0.15
            else:
                base, top = Decimal(0), value
                x = PAD_LEFT + step * i + step * 0.1 + width * j
            y1, y2 = _y(base, low, high), _y(top, low, high)
            group.append(
                f'<rect x="{x:.1f}" y="{min(y1, y2):.1f}" width="{width:.1f}" '
                f'height="{abs(y1 - y2):.1f}" fill="{s.colour}" data-series="{escape(s.name)}" '
                f'data-value="{value}"><title>{escape(label)} {escape(s.name)}: {value}</title>'
                "</rect>"
            )
        group.append("</g>")
        if links is not None:
            group = [f'<a href="{escape(links[i])}">', *group, "</a>"]
        parts.extend(group)
    parts.append("</svg>")
    return "".join(parts)


def legend(series: Sequence[Series]) -> str:
    return (
        '<p class="legend">'
        + " ".join(
            f'<span><i style="background:{s.colour}"></i>{escape(s.name)}</span>' for s in series
        )
        + "</p>"
    )
