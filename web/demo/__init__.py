"""Demo data for ``qifu init --demo``: both seed diagrams deployed and a few cases on each.

Cases are started the one way every case starts, :func:`handlers.intake.submit_case`, so they carry a unit,
category and channel and show up in the demo users' inboxes (see :mod:`web.demo.users`). Idempotent:
deploying the same diagram again creates no version, and a demo case whose enterprise and title already
exist is not submitted again.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SEED_DIAGRAMS = ("pan_an_station.bpmn", "fenghua_one_place.bpmn")

CASES: tuple[tuple[str, dict[str, str]], ...] = (
    ("fenghua_one_place", {
        "channel": "window_8718", "category": "factor_power", "enterprise_name": "宁波某机械有限公司",
        "contact_name": "王经理", "contact_phone": "13805741234", "title": "厂房用电增容",
        "description": "新产线投产，需将厂区变压器由 630kVA 增容至 1250kVA，咨询办理流程和时限。"}),
    ("fenghua_one_place", {
        "channel": "hotline", "category": "policy_talent", "enterprise_name": "奉化某电子科技有限公司",
        "contact_name": "李女士", "contact_phone": "0574-88881234", "title": "人才政策申报咨询",
        "description": "引进两名硕士研发人员，咨询区人才安居补贴的申报条件和材料。"}),
    ("pan_an_station", {
        "unit": "PA01", "channel": "walk_in", "category": "factor_sewage", "enterprise_name": "磐安某药业有限公司",
        "contact_name": "陈厂长", "contact_phone": "13957912345", "title": "排污许可办理进度",
        "description": "排污许可证延续申请已提交一个月，询问办理进度及是否需要补充材料。"}),
    ("pan_an_station", {
        "unit": "PA01", "channel": "visit", "category": "factor_road", "enterprise_name": "磐安某工贸有限公司",
        "contact_name": "周总", "contact_phone": "13857923456", "title": "园区道路破损影响运输",
        "description": "走访时企业反映：工业功能区入口道路破损，大货车通行困难，需协调修复。"}),
)


def load_demo(engine) -> str:  # engine.process_engine.ProcessEngine
    from handlers.intake import submit_case
    from handlers.models import EnterpriseCase

    versions = []
    for name in SEED_DIAGRAMS:
        result = engine.deploy((PROCESSES / name).read_bytes(), filename=name, actor="demo")
        versions.append(f"{result.deployment.process_key} v{result.deployment.version}")
    submitted = []
    for process_key, fields in CASES:
        with engine.session() as session:
            exists = session.scalar(select(EnterpriseCase.id).where(
                EnterpriseCase.enterprise_name == fields["enterprise_name"], EnterpriseCase.title == fields["title"]))
        if exists:
            continue
        submitted.append(submit_case(engine, process_key, fields, actor="demo").business_key)
    return f"已部署流程 {'、'.join(versions)}；新建演示案件 {len(submitted)} 个 {' '.join(submitted)}".rstrip()
