"""Service-task handlers: one small module per verb, registered by topic name (see docs/domain.md).

Diagrams reference a handler with ``camunda:type="external" camunda:topic="…"``; deploying a diagram whose
topic is not registered is refused. :func:`register` puts every handler on a registry; the application calls
it once where it builds its engine (:func:`web.engine.build_engine`), so nothing depends on import order.

| topic | module | verb |
|---|---|---|
| ``ledger`` | :mod:`handlers.ledger` | 台账: register the case, move its ledger status |
| ``transfer`` | :mod:`handlers.transfer` | 流转交办 to one handling unit |
| ``joint_review`` | :mod:`handlers.joint_review` | 会商: co-handling units and the joint meeting |
| ``escalate`` | :mod:`handlers.escalate` | 上报 to the county window or the leading group |
| ``revisit_sample`` | :mod:`handlers.revisit` | 回访抽样, keyed: unpredictable beforehand, reproducible afterwards |
| ``notify`` | :mod:`handlers.notify` | 通知 through the outbox |
| ``supervise`` | :mod:`handlers.supervise` | 催办 / 督办 |
| ``deadline`` | :mod:`handlers.deadline` | 延期申请 / 约定办结时限: bound and move a handling deadline |
| ``rework`` | :mod:`handlers.rework` | 不满意核实: a justified 不满意 goes back for rework, an unjustified one closes |
| ``signoff`` | :mod:`handlers.signoff` | 办结审核: the centre approves the unit's answer or sends it back (退回重办) |
"""

from __future__ import annotations

from engine.services import ServiceRegistry

from . import deadline, escalate, joint_review, ledger, notify, revisit, rework, signoff, supervise, transfer

TOPICS: dict[str, tuple[object, str]] = {
    "ledger": (ledger.handle, "台账：登记案件、更新台账状态"),
    "transfer": (transfer.handle, "流转交办：交承办单位办理"),
    "joint_review": (joint_review.handle, "会商：专班牵头、共同承办单位会商共审"),
    "escalate": (escalate.handle, "上报：报县难事办理窗口或区领导小组"),
    "revisit_sample": (revisit.handle, "回访抽样：按比例抽取回访案件（事前不可预知、事后可复核）"),
    "notify": (notify.handle, "通知：写入待发消息"),
    "supervise": (supervise.handle, "督办/催办：记录并标记超期"),
    "deadline": (deadline.handle, "延期申请/约定办结时限：校验新日期并移动办理期限"),
    "rework": (rework.handle, "不满意核实：属实的退回原办理板块整改，不属实的说明理由后销账"),
    "signoff": (signoff.handle, "办结审核：中心审核承办单位的办理结果，同意答复或退回重办"),
}


def register(registry: ServiceRegistry, *, choice_label: notify.ChoiceLabel | None = None,
             revisit_key_file: str | None = None) -> None:
    """Register every domain handler on ``registry`` under its topic name; ``choice_label`` lets notices name
    a form choice by its label in the diagram (the application passes its lookup, web.labels);
    ``revisit_key_file`` is the revisit sampling key (default :func:`handlers.revisit.key_file`)."""
    for topic, (handler, description) in TOPICS.items():
        if topic == "notify" and choice_label is not None:
            handler = notify.make_handler(choice_label)
        if topic == "revisit_sample" and revisit_key_file:
            handler = revisit.make_handler(revisit_key_file)
        registry.register(topic, handler, description)  # type: ignore[arg-type]
    registry.register_job_queue(notify.JOB_TYPE, notify.requeue, "通知待发消息（qifu outbox send）")
