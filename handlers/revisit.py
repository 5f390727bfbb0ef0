"""``revisit_sample`` (回访抽样, PA-8): decide whether a case is revisited, unpredictably beforehand and
reproducibly afterwards.

Policy (磐 365 中心〔2024〕4 号): general problems at 20 %, difficult problems and complaints at 100 %.

**The kind** is decided when the case closes (the diagram runs this task after the answer), not at intake:
``kind = by_handling`` reads how the case was handled from its ledger row — a complaint is a complaint; a case
classified 疑难, or one that had to be reported to the county's 兜底服务板块 (难事办理窗口), is a difficult
problem; everything else is general. A diagram may still give ``general`` / ``difficult`` / ``complaint``
(or an expression) itself.

**The draw** is ``HMAC-SHA256(key, seed) mod 10000`` with ``seed = "{business_key}|{kind}|{policy}|{key id}"``
and a secret key kept outside the database (``QIFU_REVISIT_KEY_FILE``, default ``revisit_key`` in
``QIFU_VAR_DIR``; created with one random key if missing). Nobody without the key — a clerk at intake, someone
reading the database — can tell beforehand whether a case will be drawn; the case, kind, policy and key fix
the answer, so nobody can re-roll a case either; and an auditor holding the key recomputes every recorded
draw (:func:`recompute`). Each decision is stored in ``revisit_draw`` (seed, draw, threshold, rate, reason)
and noted in the case history. Draws recorded before the key (``business_key|kind|policy``, plain SHA-256)
still recompute.

An optional ``rate`` parameter (0–1) overrides the policy rate for a diagram whose region revisits at a
different rate (e.g. Fenghua's centre revisits every answered case: ``rate=1``); the override is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.services import ServiceCall

from .common import case_of, fail
from .models import EnterpriseCase, RevisitDraw

log = logging.getLogger(__name__)

POLICY_VERSION = "PA-2024-4"
RATES = {"general": 0.2, "difficult": 1.0, "complaint": 1.0}
KIND_NAMES = {"general": "一般问题", "difficult": "疑难问题", "complaint": "投诉类问题"}
BY_HANDLING = "by_handling"
SCALE = 10000


# --- the key -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RevisitKeys:
    """The sampling keys: ``key id → key``; the last one draws, every one recomputes its own draws."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def generate(cls) -> RevisitKeys:
        key = secrets.token_bytes(32)
        key_id = "k" + hashlib.sha256(key).hexdigest()[:8]
        return cls({key_id: key}, key_id)

    @classmethod
    def load(cls, path: str | Path) -> RevisitKeys:
        """The keys in ``path`` (lines ``key-id hex-key``), creating the file with one new key if missing."""
        file = Path(path)
        if not file.exists():
            fresh = cls.generate()
            file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(f"{fresh.current} {fresh.keys[fresh.current].hex()}\n")
            log.warning("revisit sampling key file %s created with key %s: keep it outside the database and its "
                        "backups, and copy it to every machine that runs the engine", file, fresh.current)
        keys: dict[str, bytes] = {}
        current = ""
        for number, line in enumerate(file.read_text(encoding="ascii").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                key_id, hex_key = line.split()
                keys[key_id] = bytes.fromhex(hex_key)
            except ValueError:
                raise ValueError(f"回访抽样密钥文件 {file} 第 {number} 行格式不正确（应为“密钥编号 十六进制密钥”）") from None
            current = key_id
        if not keys:
            raise ValueError(f"回访抽样密钥文件 {file} 中没有密钥")
        return cls(keys, current)


def key_file() -> Path:
    """Where the sampling key lives unless the application names a file: ``QIFU_REVISIT_KEY_FILE``, else
    ``revisit_key`` in ``QIFU_VAR_DIR`` (``var``)."""
    configured = os.environ.get("QIFU_REVISIT_KEY_FILE", "").strip()
    if configured:
        return Path(configured)
    return Path(os.environ.get("QIFU_VAR_DIR", "").strip() or "var") / "revisit_key"


_loaded: dict[Path, RevisitKeys] = {}


def keys_at(path: str | Path | None = None) -> RevisitKeys:
    file = Path(path) if path else key_file()
    if file not in _loaded:
        _loaded[file] = RevisitKeys.load(file)
    return _loaded[file]


# --- the draw ----------------------------------------------------------------------------------------------
def _value(key: bytes, seed: str) -> int:
    return int(hmac.new(key, seed.encode("utf-8"), hashlib.sha256).hexdigest(), 16) % SCALE


def draw_for(business_key: str, kind: str, keys: RevisitKeys,
             policy_version: str = POLICY_VERSION) -> tuple[str, int]:
    """The seed text and the draw (0…9999) of a case under the current key."""
    seed = f"{business_key}|{kind}|{policy_version}|{keys.current}"
    return seed, _value(keys.keys[keys.current], seed)


def recompute(seed: str, keys: RevisitKeys) -> int:
    """The draw a recorded seed gives (an auditor's check): under the key the seed names, or, for a draw
    recorded before the key, the plain SHA-256 of the seed."""
    parts = seed.split("|")
    if len(parts) == 4:
        key = keys.keys.get(parts[3])
        if key is None:
            raise KeyError(f"回访抽样密钥 {parts[3]} 不在密钥文件中，无法复核")
        return _value(key, seed)
    return int(hashlib.sha256(seed.encode("utf-8")).hexdigest(), 16) % SCALE


def kind_by_handling(case: EnterpriseCase) -> tuple[str, str]:
    """The revisit kind from how the case was handled, and the words that say why."""
    if case.classification == "complaint":
        return "complaint", "投诉类问题"
    if case.escalated_to:
        return "difficult", f"经县兜底服务板块（难事办理窗口）{case.escalated_to} 办理"
    if case.classification == "difficult":
        return "difficult", "受理时研判为疑难问题"
    return "general", "在站内办结"


def make_handler(key_path: str | Path | None = None) -> Callable[[ServiceCall], dict[str, Any]]:
    """The ``revisit_sample`` handler drawing with the keys in ``key_path`` (default :func:`key_file`)."""

    def handle(call: ServiceCall) -> dict[str, Any]:
        """回访抽样：按比例抽取回访案件（事前不可预知、事后可复核）(kind = by_handling / general / difficult / complaint)."""
        kind = str(call.params.get("kind") or "").strip()
        case = case_of(call)
        basis_note = None
        if kind == BY_HANDLING:
            kind, basis_note = kind_by_handling(case)
        if kind not in RATES:
            fail(call, f"回访类别“{kind}”无效，应为 by_handling（按办理情况）/ general（一般）/ difficult（疑难）"
                       "/ complaint（投诉）")
        rate = RATES[kind]
        override = call.params.get("rate")
        if override not in (None, ""):
            try:
                rate = float(override)
            except (TypeError, ValueError):
                fail(call, f"回访比例“{override}”不是数字")
            if not 0 <= rate <= 1:
                fail(call, f"回访比例 {rate} 应在 0 到 1 之间")
        try:
            keys = keys_at(key_path)
        except (OSError, ValueError) as exc:
            fail(call, f"无法读取回访抽样密钥：{exc}")
        seed, draw = draw_for(call.business_key, kind, keys)
        threshold = round(rate * SCALE)
        selected = draw < threshold
        percent = f"{rate:.0%}"
        basis = "（流程指定比例）" if override not in (None, "") else ""
        name = KIND_NAMES[kind] + (f"（{basis_note}）" if basis_note else "")
        if threshold >= SCALE:
            reason = f"{name}按 {percent} 比例回访{basis}，必回访"
        else:
            reason = (f"{name}按 {percent} 比例抽样{basis}：抽签值 {draw} "
                      f"{'<' if selected else '≥'} {threshold}，{'抽中回访' if selected else '未抽中'}")
        call.session.add(RevisitDraw(case_id=case.id, kind=kind, rate=rate, policy_version=POLICY_VERSION,
                                     seed=seed, draw=draw, threshold=threshold, selected=selected,
                                     reason=reason[:300], drawn_at=call.now, actor=call.actor))
        case.revisit_selected = selected
        call.notes.append({"note": f"回访抽样：{reason}", "kind": kind, "seed": seed, "key": keys.current,
                           "draw": draw, "threshold": threshold, "rate": rate, "selected": selected})
        return {"revisit_selected": selected, "revisit_reason": reason}

    return handle


handle = make_handler()
