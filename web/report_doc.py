"""The monthly 简报 rendered as one self-contained HTML document (inline CSS and SVG charts), and as PDF.

The same function serves the page (which adds a toolbar that print hides), ``qifu report monthly`` and the
PDF (:func:`web.pdf.html_to_pdf`), so the three never differ. Rendered with a Jinja environment of its own
over ``web/templates`` (autoescaped), so the CLI needs no Flask app.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from engine.clock import SHANGHAI

from . import charts
from .read.kpi import COLUMNS, DEFINITIONS, NO_DATA, shown
from .read.monthly import SECTIONS, MonthlyReport

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def _local(value: datetime | None) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if value else ""


def _pct(value: float | None) -> str:
    return shown(value, "percent")


def report_charts(r: MonthlyReport) -> dict[str, Markup]:
    """The document's charts, each an inline ``<svg>``."""
    previous = f"上月（{r.period.first.month - 1 or 12}月）"
    total = r.kpi.total
    return {
        "volume": charts.hbar("受理量对比", [(previous, r.last_month), ("本月", r.volume), ("去年同月", r.last_year)],
                              highlight="本月", chart_id="chart-volume"),
        "category": charts.hbar("按问题分类（件）", [(c.name, c.count) for c in r.by_category[:10]],
                                chart_id="chart-category"),
        "channel": charts.hbar("按受理渠道（件）", [(c.name, c.count) for c in r.by_channel[:10]],
                               chart_id="chart-channel"),
        "ranking": charts.hbar("各单位按时办结率", [(u.unit_name, u.on_time_rate or 0.0) for u in r.ranking[:15]],
                               percent=True, chart_id="chart-ranking"),
        "satisfaction": charts.stacked("满意度构成", [("满意", total.satisfied, "#3b8d5a"),
                                                   ("基本满意", total.basically_satisfied, "#d9a441"),
                                                   ("不满意", total.dissatisfied, "#c8553d")],
                                       chart_id="chart-satisfaction"),
    }


def render_html(r: MonthlyReport, *, toolbar: Markup | str = "") -> str:
    ranks = {u.unit: i for i, u in enumerate(r.ranking, start=1)}
    unranked = [u for u in r.kpi.rows if u.unit not in ranks]
    return _env.get_template("report/monthly.html").render(
        r=r, sections=SECTIONS, columns=COLUMNS, shown=shown, pct=_pct, local=_local, charts=report_charts(r),
        ranks=ranks, unranked=unranked, definitions=DEFINITIONS, no_data=NO_DATA, toolbar=toolbar)


def render(r: MonthlyReport, fmt: str, **kwargs: Any) -> bytes:
    """``fmt`` html or pdf, as bytes."""
    html = render_html(r, **kwargs)
    if fmt == "pdf":
        from .pdf import html_to_pdf

        return html_to_pdf(html)
    return html.encode("utf-8")
