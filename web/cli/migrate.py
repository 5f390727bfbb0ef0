"""``qifu migrate KEY --from 1 --to 2 [--dry-run] [--case BK…]``: move running cases to a newer version.

The dry run lists, per running case of the old version, whether it can move and why not (SpiffWorkflow's
comparison of the two specs against the case's state, :mod:`engine.migration`). Without ``--dry-run`` the
cases that can move are moved (all of them, or those named with ``--case``), each in its own transaction;
each move is a step with the history action ``migrated``. A named case that cannot move is reported and
left as it is; the command then exits 2. ``--json`` prints one document: the plan and what was moved.
"""

from __future__ import annotations

from typing import Any

import click

from engine.errors import QifuError

from . import main, pass_state, reports_errors


def _plan_document(plan: Any) -> dict[str, Any]:
    return {"process": plan.process_key, "from": plan.from_version, "to": plan.to_version, "total": plan.total,
            "cases": [{"business_key": c.business_key, "instance": c.instance_id, "migrate": c.migrate,
                       "reasons": list(c.reasons), "changes": list(c.changes)} for c in plan.cases]}


@main.command()
@click.argument("process_key")
@click.option("--from", "from_version", type=click.IntRange(min=1), required=True, help="the version cases are on")
@click.option("--to", "to_version", type=click.IntRange(min=1), required=True, help="the version to move them to")
@click.option("--dry-run", is_flag=True, help="only list, per case, migrate / cannot (why); change nothing")
@click.option("--case", "cases", multiple=True, help="only this case (business key); may be repeated")
@click.option("--actor", default="cli", help="who migrates (recorded in each case's history)")
@pass_state
@reports_errors
def migrate(state, process_key: str, from_version: int, to_version: int, dry_run: bool, cases: tuple[str, ...],
            actor: str) -> None:
    """Migrate running cases of PROCESS_KEY from one version to another, where that is safe."""
    runtime = state.engine.runtime
    plan = runtime.migration_plan(process_key, from_version, to_version)
    document = _plan_document(plan)
    by_key = {c.business_key: c for c in plan.cases}
    unknown = [bk for bk in cases if bk not in by_key]
    if unknown:
        raise QifuError(f"不是 {process_key} 版本 {from_version} 上运行中的案件：{'、'.join(unknown)}")
    chosen = [by_key[bk] for bk in cases] if cases else [c for c in plan.cases if c.migrate]
    refused = [c for c in chosen if not c.migrate]
    if dry_run:
        state.out(_human_plan(document), {**document, "dry_run": True})
        return
    moved, failed = [], []
    for instance_id, result, error in runtime.migrate_many([c.instance_id for c in chosen if c.migrate], process_key,
                                                           from_version, to_version, actor=actor):
        if result is not None:
            moved.append(result.business_key)
        else:
            failed.append({"instance": instance_id, "message": error.message if error else ""})
    failed += [{"business_key": c.business_key, "message": "；".join(c.reasons)} for c in refused]
    out = {**document, "dry_run": False, "migrated": moved, "refused": failed}
    lines = [f"已迁移 {len(moved)} 个案件到版本 {to_version}" + (f"：{'、'.join(moved)}" if moved else "")]
    lines += [f"未迁移 {f.get('business_key') or '#' + str(f.get('instance'))}：{f['message']}" for f in failed]
    state.out("\n".join(lines), out)
    if failed:
        raise SystemExit(2)


def _human_plan(document: dict[str, Any]) -> str:
    lines = [f"{document['process']} 版本 {document['from']} → {document['to']}：运行中的案件 {document['total']} 个（预演，未改动）"]
    for c in document["cases"]:
        if c["migrate"]:
            lines.append(f"  可迁移  {c['business_key']}" + (f"（{'；'.join(c['changes'])}）" if c["changes"] else ""))
        else:
            lines.append(f"  不能迁移 {c['business_key']}：{'；'.join(c['reasons'])}")
    return "\n".join(lines)
