"""``qifu briefing YYYY-MM``: the monthly briefing (简报, FH-10) per unit, as text, JSON or an .xlsx file."""

from __future__ import annotations

from pathlib import Path

import click

from engine.errors import QifuError

from . import main, pass_state, reports_errors


@main.command()
@click.argument("month")
@click.option("--region", type=click.Choice(["pan_an", "fenghua"]), help="only this region's cases")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False, writable=True), help="also write an .xlsx file")
@pass_state
@reports_errors
def briefing(state, month: str, region: str | None, xlsx_path: str | None) -> None:
    """Per unit: received, answered on time / late, carried, supervisions and satisfaction of MONTH."""
    from web.read import ledger as ledger_report

    with state.engine.read() as session:
        report = ledger_report.briefing(session, month, region)
    if xlsx_path:
        from web.exports import briefing_sheet
        from web.spreadsheet import export_notes, workbook_bytes

        notes = export_notes({"月份": report.month, "区域": region or ""}, exported_by="命令行",
                             at=state.engine.clock.now())
        try:
            Path(xlsx_path).write_bytes(workbook_bytes(briefing_sheet(report, notes)))
        except OSError as exc:  # a missing directory or no permission is a bad --xlsx, not a crash
            raise QifuError(f"无法写入 {xlsx_path}：{exc.strerror or exc}") from None
    if state.json:
        state.out("", {**report.to_dict(), "xlsx": xlsx_path})
        return
    click.echo(ledger_report.briefing_text(report))
    if xlsx_path:
        click.echo(f"已导出 {xlsx_path}")
