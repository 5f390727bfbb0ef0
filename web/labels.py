"""Chinese labels for what the UI shows: history actions, case variables, task states, masking.

One table per kind of word, so templates never spell a label twice and a missing label falls back to the
technical name instead of breaking the page.
"""

from __future__ import annotations

ACTIONS = {
    "started": "案件受理",
    "task_completed": "办理任务",
    "timer_fired": "期限到达",
    "timer_rescheduled": "调整期限",
    "deadline_recomputed": "重算期限",
    "task_claimed": "认领任务",
    "task_unclaimed": "退回组内",
    "task_reassigned": "改派任务",
    "attachment_added": "上传附件",
}

# docs/domain.md "Case data"; diagram form fields carry their own labels (looked up from the diagram first)
VARIABLES = {
    "region": "区域", "unit": "受理单位", "channel": "受理渠道", "category": "问题分类",
    "enterprise_name": "企业名称", "credit_code": "统一社会信用代码", "contact_name": "联系人",
    "contact_phone": "联系电话", "contact_id_number": "身份证号", "title": "诉求标题", "description": "诉求内容",
    "received_at": "受理时间", "tracking_hash": "查询凭证摘要", "classification": "问题定性", "scope": "问题层级",
    "route": "办理路径", "handling_unit": "承办单位", "joint_units": "会商单位", "agreed_date": "约定办结日期",
    "satisfaction": "满意度", "ledger_status": "台账状态", "overdue": "逾期", "transferred_at": "交办时间",
    "meeting_at": "会商时间", "escalated_to": "上报至", "escalated_at": "上报时间",
    "revisit_selected": "抽中回访", "revisit_reason": "回访抽样说明",
}

REGIONS = {"pan_an": "磐安", "fenghua": "奉化"}
LEDGER = {"handling": "办理中", "answered": "已答复", "closed": "销账", "carried": "挂账"}
LIGHTS = {"green": "正常", "yellow": "临期", "red": "逾期", "none": "无期限"}
TASK_STATUS = {"": "全部", "mine": "我已认领", "unclaimed": "待认领", "claimed": "已认领", "overdue": "已逾期",
               "due_soon": "临期"}

# Never shown in a timeline or a data change, not even masked: it would help guess the tracking token.
HIDDEN_VARIABLES = frozenset({"tracking_hash"})
# Shown masked unless the viewer may unmask (web.scope.may_unmask), and every unmasked view is logged.
MASKED_VARIABLES = frozenset({"contact_phone", "contact_id_number"})


def action(name: str | None) -> str:
    return ACTIONS.get(name or "", name or "")


def variable(name: str) -> str:
    return VARIABLES.get(name, name)


def mask(field: str, value: object) -> str:
    """138****5678 for a phone, 330727********1234 for an ID number: enough to recognise, not to use."""
    text = "" if value is None else str(value)
    if not text:
        return ""
    if field == "contact_id_number":
        keep_head, keep_tail = (6, 4) if len(text) > 10 else (1, 1)
    else:
        keep_head, keep_tail = (3, 4) if len(text) >= 8 else (1, 1)
    if len(text) <= keep_head + keep_tail:
        return "*" * len(text)
    return text[:keep_head] + "*" * (len(text) - keep_head - keep_tail) + text[-keep_tail:]
