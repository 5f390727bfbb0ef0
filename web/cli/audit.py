"""``qifu audit``: verify the history chains, replay a case step by step, export the event log, manage the
history keys.

    qifu audit verify [CASE]                 the chains (and their MACs) of one case or all; exit 1 if broken
    qifu audit replay CASE [--step K] [--raw] the case at step K, as the replay page shows it
    qifu audit export --format xes|csv …     the event log for process mining (streamed)
    qifu audit keys / rotate-key / seal      the key file of the keyed chain (see README "Auditing")

Replay prints the same :class:`web.read.history.ReplayStep` the replay page renders, so the two cannot say
different things.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, BinaryIO

import click

from engine.errors import NotFoundError, QifuError

from . import main, pass_state, reports_errors


@main.group()
def audit() -> None:
    """Audit the history: verify the chains, replay a case, export the event log, rotate the key."""


def _keys(instance_ids: list[int], engine: Any) -> dict[int, str]:
    views = engine.runtime.instances(instance_ids) if instance_ids else {}
    return {iid: v.business_key for iid, v in views.items()}


@audit.command()
@click.argument("case", required=False)
@pass_state
@reports_errors
def verify(state, case: str | None) -> None:
    """Check the hash chain and MACs of CASE (default: every case); exit 1 naming the first broken row of each
    broken chain, and every problem found."""
    from engine.history import first_broken

    history = state.engine.history
    ids = [history.instance_id(case)] if case else None
    problems = history.verify(ids)
    count = 1 if case else history.count_instances()
    first = first_broken(problems)
    names = _keys(sorted(first), state.engine)
    firsts = [{**p.__dict__, "business_key": names.get(iid)} for iid, p in sorted(first.items())]
    if state.json:
        state.out("", {"ok": not problems, "checked": count, "key_id": history.keys.current.id,
                       "problems": [p.__dict__ for p in problems], "first_broken": firsts})
    elif problems:
        for p in problems:
            click.echo(f"篡改: {p}", err=True)
        for p in firsts:
            where = f"event id={p['event_id']} seq={p['seq']}" if p["event_id"] is not None else f"seq={p['seq']}"
            click.echo(f"首个损坏行: 案件 {p['business_key'] or '?'} (instance {p['instance_id']}) {where}: "
                       f"{p['reason']}", err=True)
        click.echo(f"历史记录被篡改 (history tampered): {len(problems)} 处问题，{len(first)} 个案件", err=True)
    else:
        click.echo(f"历史记录完整 (history intact; {count} case chains checked, hashes and MACs; "
                   f"signing key {history.keys.current.id})")
    if problems:
        sys.exit(1)


def _instance(engine: Any, case: str) -> Any:
    iid = engine.history.instance_id(case)
    view = engine.runtime.instances([iid]).get(iid)
    if view is None:
        raise NotFoundError(f"案件不存在: {case}")
    return view


@audit.command()
@click.argument("case")
@click.option("--step", type=int, default=None, help="event number K (default: the newest)")
@click.option("--raw", is_flag=True, help="ids and codes as stored, instead of names")
@pass_state
@reports_errors
def replay(state, case: str, step: int | None, raw: bool) -> None:
    """The case at step K: the event (who, what, when, channel), the diagram's markers, the data before and after."""
    from web.read.history import load_replay, raw_data

    engine = state.engine
    history = engine.history
    instance = _instance(engine, case)
    st = history.replay(instance.id, step)  # refuses a step that does not exist
    with engine.read() as session:
        readable = load_replay(engine, session, instance, st.step)
    if state.json:
        state.out("", {**readable.to_dict(), "instance": st.instance_id, "step": st.step, "at": st.at,
                       "actor": st.actor, "action": st.action, "active": st.active, "completed": st.completed,
                       "data": raw_data(st.data)})
        return
    if raw:
        click.echo(f"案件 #{st.instance_id} 第 {st.step} 步  {st.at}  {st.actor or '-'}  {st.action}")
        click.echo("进行中:")
        for a in st.active:
            click.echo(f"  {a['element']}  {a.get('name') or ''}  ({a['state']})")
        click.echo("已完成:")
        for c in st.completed:
            click.echo(f"  [{c['seq']}] {c['element']}  {c.get('name') or ''}")
        click.echo("案件数据:")
        click.echo("  " + json.dumps(raw_data(st.data), ensure_ascii=False, sort_keys=True, default=str))
        return
    click.echo(replay_text(readable))


def replay_text(r: Any) -> str:
    """A :class:`~web.read.history.ReplayStep` as text: the same fields, in the same order, as the page."""
    lines = [f"案件 {r.business_key}（{r.process} 第 {r.version} 版） 第 {r.step}/{r.steps} 步",
             f"时间：{r.at}", f"办理人：{r.who}", f"渠道：{r.channel}", f"事件：{r.what}"]
    if r.elements:
        lines.append("完成环节：" + "、".join(r.elements))
    if r.reason:
        lines.append(f"原因：{r.reason}")
    lines.extend(f"备注：{n}" for n in r.notes)
    lines.append("当时进行中：" + ("、".join(r.active) or "无"))
    lines.append("流程图标记：" + "；".join(f"{name} {'、'.join(r.markers[key]) or '无'}" for key, name in
                                      (("completed", "已完成"), ("active", "进行中"), ("overdue", "逾期"))))
    lines.append("案件数据（本步之前 → 本步之后，* 为本步改变）：")
    for row in r.data:
        lines.append(f"  {'*' if row.changed else ' '} {row.label}：{row.before or '—'} → {row.after or '—'}")
    return "\n".join(lines)


@audit.command()
@click.option("--format", "fmt", type=click.Choice(["xes", "csv"]), required=True, help="XES (IEEE 1849) or CSV")
@click.option("--process", default="", help="only this process key")
@click.option("--version", "version", default="", help="only this version of the process")
@click.option("--from", "received_from", default="", help="cases received on or after this day (YYYY-MM-DD, Beijing)")
@click.option("--to", "received_to", default="", help="cases received on or before this day (YYYY-MM-DD, Beijing)")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="file to write (default: stdout)")
@pass_state
@reports_errors
def export(state, fmt: str, process: str, version: str, received_from: str, received_to: str,
           output: str | None) -> None:
    """Export the event log of every case (or of one process/version, cases received in a date range)."""
    from web.read.history import ExportFilter, export_chunks

    wanted = ExportFilter(process, version, received_from, received_to)
    flt = wanted.log_filter()
    if output is None and state.json:
        raise QifuError("--json 时请用 --output 指定导出文件（标准输出只用于 JSON 结果）")
    chunks = export_chunks(state.engine, flt, fmt, name=f"企服事件日志 {process or '全部流程'}")
    written = 0
    if output is None:
        stream: BinaryIO = sys.stdout.buffer
        for chunk in chunks:
            stream.write(chunk)
            written += len(chunk)
        stream.flush()
        return
    try:
        with Path(output).open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                written += len(chunk)
    except OSError as exc:
        raise QifuError(f"无法写入 {output}：{exc.strerror or exc}") from None
    state.out(f"已导出 {output}（{fmt.upper()}，{written} 字节）", {"path": output, "format": fmt, "bytes": written,
                                                            "filter": wanted.args()})


@audit.command()
@pass_state
@reports_errors
def keys(state) -> None:
    """The key ids in the history key file (never the keys): the last one signs new events."""
    ring = state.engine.history.keys
    rows = [{"id": k.id, "created": k.created, "signs": k is ring.current} for k in ring.keys]
    if state.json:
        state.out("", {"path": ring.path, "keys": rows})
        return
    click.echo(f"密钥文件 {ring.path}")
    for r in rows:
        click.echo(f"  {r['id']}  {r['created']}  {'签名（新事件）' if r['signs'] else '仅校验'}")


@audit.command("rotate-key")
@pass_state
@reports_errors
def rotate_key(state) -> None:
    """Add a new signing key to the key file; the old keys stay (read-only) so old rows keep verifying.
    Restart `qifu serve` and every `qifu worker` afterwards: each signs with the key it loaded at start."""
    history = state.engine.history
    old = history.keys.current.id
    ring = history.rotate_key(state.engine.clock.now())
    state.out(f"新密钥 {ring.current.id} 已加入 {ring.path}（此前的 {old} 等 {len(ring.keys) - 1} 个密钥保留用于校验）；"
              f"请重启 qifu serve 与各 qifu worker，使新事件使用新密钥",
              {"key_id": ring.current.id, "previous": old, "path": ring.path, "keys": [k.id for k in ring.keys]})


@audit.command()
@pass_state
@reports_errors
def seal(state) -> None:
    """Sign the rows written before the keyed chain (run once after upgrading to it); chains that do not verify
    are left unsigned and named (exit 1)."""
    report = state.engine.history.seal()
    if state.json:
        state.out("", {"signed": report.signed, "chains": report.chains,
                       "refused": [p.__dict__ for p in report.refused]})
    else:
        click.echo(f"已签名 {report.signed} 行（{report.chains} 个案件链）")
        for p in report.refused:
            click.echo(f"未签名（链条不完整）: {p}", err=True)
    if report.refused:
        sys.exit(1)
