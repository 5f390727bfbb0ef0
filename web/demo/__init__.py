"""Demo data for ``qifu init --demo``: a small general-request diagram and a few cases on it.

Idempotent: deploying the same diagram again creates no version, and existing demo cases are kept.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from engine.models import Instance

DIAGRAM = Path(__file__).with_name("general_request.bpmn")
CASES = [
    ("DEMO-0001", {"enterprise": "宁波某机械有限公司", "description": "厂房用电增容咨询"}),
    ("DEMO-0002", {"enterprise": "奉化某电子科技有限公司", "description": "人才政策申报咨询"}),
    ("DEMO-0003", {"enterprise": "磐安某药业有限公司", "description": "排污许可办理进度"}),
]


def load_demo(engine) -> str:  # noqa: ANN001 - engine.process_engine.ProcessEngine
    result = engine.deploy(DIAGRAM.read_bytes(), filename=DIAGRAM.name, actor="demo")
    started = 0
    for key, data in CASES:
        with engine.session() as session:
            exists = session.scalar(select(Instance.id).where(Instance.business_key == key))
        if exists:
            continue
        engine.runtime.start(result.deployment.process_key, key,
                             {**data, "received_at": engine.clock.now().isoformat()}, actor="demo")
        started += 1
    return (f"演示流程 {result.deployment.process_key} 版本 {result.deployment.version}；"
            f"新建演示案件 {started} 个")
