"""``revisit_sample`` (回访抽样, PA-8): decide whether a case is revisited, reproducibly and auditably.

Policy (磐 365 中心〔2024〕4 号): general problems at 20 %, difficult problems and complaints at 100 %.

The draw is not random: ``draw = int(sha256(seed)) mod 10000`` with ``seed = "{business_key}|{kind}|{policy}"``,
and the case is selected when ``draw < rate × 10000``. Anyone can recompute a decision from the recorded
seed, and nobody can re-roll a case to dodge a revisit: the same case, kind and policy always give the same
answer. Each decision is stored in ``revisit_draw`` with seed, draw, threshold, rate and the reason, and noted
in the case history.

An optional ``rate`` parameter (0–1) overrides the policy rate for a diagram whose region revisits at a
different rate (e.g. Fenghua's centre revisits every answered case: ``rate=1``); the override is recorded.
"""

from __future__ import annotations

import hashlib
from typing import Any

from engine.services import ServiceCall

from .common import case_of, fail
from .models import RevisitDraw

POLICY_VERSION = "PA-2024-4"
RATES = {"general": 0.2, "difficult": 1.0, "complaint": 1.0}
KIND_NAMES = {"general": "一般问题", "difficult": "疑难问题", "complaint": "投诉类问题"}
SCALE = 10000


def draw_for(business_key: str, kind: str, policy_version: str = POLICY_VERSION) -> tuple[str, int]:
    """The seed text and the draw (0…9999) of a case; pure, so an auditor can recompute it."""
    seed = f"{business_key}|{kind}|{policy_version}"
    return seed, int(hashlib.sha256(seed.encode("utf-8")).hexdigest(), 16) % SCALE


def handle(call: ServiceCall) -> dict[str, Any]:
    """回访抽样：按比例抽取回访案件（可复现、可审计）(kind = general / difficult / complaint)."""
    kind = str(call.params.get("kind") or "").strip()
    if kind not in RATES:
        fail(call, f"回访类别“{kind}”无效，应为 general（一般）/ difficult（疑难）/ complaint（投诉）")
    rate = RATES[kind]
    override = call.params.get("rate")
    if override not in (None, ""):
        try:
            rate = float(override)
        except (TypeError, ValueError):
            fail(call, f"回访比例“{override}”不是数字")
        if not 0 <= rate <= 1:
            fail(call, f"回访比例 {rate} 应在 0 到 1 之间")
    case = case_of(call)
    seed, draw = draw_for(call.business_key, kind)
    threshold = round(rate * SCALE)
    selected = draw < threshold
    percent = f"{rate:.0%}"
    basis = "（流程指定比例）" if override not in (None, "") else ""
    if threshold >= SCALE:
        reason = f"{KIND_NAMES[kind]}按 {percent} 比例回访{basis}，必回访"
    else:
        reason = (f"{KIND_NAMES[kind]}按 {percent} 比例抽样{basis}：抽签值 {draw} "
                  f"{'<' if selected else '≥'} {threshold}，{'抽中回访' if selected else '未抽中'}")
    call.session.add(RevisitDraw(case_id=case.id, kind=kind, rate=rate, policy_version=POLICY_VERSION, seed=seed,
                                 draw=draw, threshold=threshold, selected=selected, reason=reason,
                                 drawn_at=call.now, actor=call.actor))
    case.revisit_selected = selected
    call.notes.append({"note": f"回访抽样：{reason}", "seed": seed, "draw": draw, "threshold": threshold,
                       "rate": rate, "selected": selected})
    return {"revisit_selected": selected, "revisit_reason": reason}
