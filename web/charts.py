"""Charts for the 简报 as inline SVG drawn in Python: Chinese labels, no JavaScript, black-on-white so they read
the same on screen, in print and in the PDF (Chromium renders them with the Noto CJK fonts).

Each function returns :class:`markupsafe.Markup` of one ``<svg>`` whose labels and values are escaped and
written as ``<text>`` (so the PDF's text layer holds them too).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', sans-serif"
BAR = "#3b6ea5"
BAR_ALT = "#c8553d"
GRID = "#d0d0d0"


def _text_width(text: str, size: float) -> float:
    return sum(size if ord(ch) > 0x2E80 else size * 0.6 for ch in text)


LABEL_MAX = 260.0


def _fit(text: str, size: float, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels (a long unit name must not run off the chart)."""
    if _text_width(text, size) <= width:
        return text
    while text and _text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def hbar(title: str, items: Sequence[tuple[str, float]], *, unit: str = "件", percent: bool = False,
         width: int = 640, highlight: str | None = None, chart_id: str = "") -> Markup:
    """A horizontal bar chart: one labelled bar per item, its value written at the bar's end."""
    size, row = 13.0, 24
    label_w = min(LABEL_MAX, max([_text_width(label, size) for label, _ in items] + [60.0]) + 12)
    items = [(_fit(label, size, label_w - 12), value) for label, value in items]
    value_w = 70.0
    plot_w = width - label_w - value_w - 10
    top = 30
    height = top + row * max(len(items), 1) + 10
    peak = max([v for _, v in items] + [1.0 if percent else 0.0, 1e-9]) if not percent else 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}"'
             + (f' id="{escape(chart_id)}"' if chart_id else "") + f'><title>{escape(title)}</title>',
             f'<text x="0" y="18" font-size="15" font-weight="bold">{escape(title)}</text>']
    if not items:
        parts.append(f'<text x="0" y="{top + 16}" font-size="{size}" fill="#666">暂无数据</text>')
    for i, (label, value) in enumerate(items):
        y = top + i * row
        bar_w = 0 if peak <= 0 else plot_w * max(value, 0) / peak
        shown = f"{value * 100:.1f}%" if percent else f"{value:g}{unit}"
        colour = BAR_ALT if highlight is not None and label == highlight else BAR
        parts.append(f'<text x="{label_w - 6}" y="{y + 16}" font-size="{size}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar_w:.1f}" height="{row - 8}" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + bar_w + 4:.1f}" y="{y + 16}" font-size="{size}">{escape(shown)}</text>')
    parts.append(f'<line x1="{label_w}" y1="{top}" x2="{label_w}" y2="{height - 10}" stroke="{GRID}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked(title: str, parts_: Sequence[tuple[str, int, str]], *, width: int = 640, chart_id: str = "") -> Markup:
    """One bar split into its parts (label, count, colour), with a legend: e.g. 满意 / 基本满意 / 不满意."""
    total = sum(n for _, n, _ in parts_)
    height = 90
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="{FONT}"' + (f' id="{escape(chart_id)}"' if chart_id else "")
           + f'><title>{escape(title)}</title>',
           f'<text x="0" y="18" font-size="15" font-weight="bold">{escape(title)}</text>']
    x = 0.0
    legend_x = 0.0
    for label, n, colour in parts_:
        w = (width - 2) * n / total if total else 0
        if w:
            out.append(f'<rect x="{x:.1f}" y="30" width="{w:.1f}" height="22" fill="{colour}"/>')
        x += w
        text = f"{label} {n}" + (f"（{n / total * 100:.1f}%）" if total else "")
        out.append(f'<rect x="{legend_x:.1f}" y="64" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 16:.1f}" y="75" font-size="13">{escape(text)}</text>')
        legend_x += 16 + _text_width(text, 13) + 24
    if not total:
        out.append('<text x="0" y="46" font-size="13" fill="#666">暂无评价</text>')
    out.append("</svg>")
    return Markup("".join(out))
