"""Settings read once from the environment into one frozen object (README's settings table lists them all).

Each field says where it comes from (``QIFU_…``), its default and what it is for; :func:`read` parses and checks
every variable at once and refuses a wrong value with a message naming it, because a misspelt setting that
silently falls back to its default (a convention that moves every deadline, a limit that is not enforced) is
worse than a server that does not start. The engine's part is :class:`EngineSettings`; the application adds
its own section (``web.settings``) built by the same :func:`read`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any, TypeVar

from .errors import QifuError

T = TypeVar("T")


class SettingsError(QifuError, ValueError):
    """A setting has a value it cannot have; nothing starts."""

    code = "invalid_settings"


def setting(env: str, default: str, doc: str, parse: Callable[[str], Any] = str) -> Any:
    """A settings field read from ``env``; ``default`` is the text form (as README shows it)."""
    return field(default=parse(default) if default != "" else None,
                 metadata={"env": env, "default": default, "doc": doc, "parse": parse})


def positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("不能为负数")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("应为正数")
    return value


def flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("应为 1 或 0")


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in allowed:
            raise ValueError(f"只能是 {' / '.join(allowed)}")
        return text.strip()

    return parse


def wall_time(text: str) -> time:
    value = time.fromisoformat(text.strip())
    if value.tzinfo is not None:
        raise ValueError("不能带时区：期限一律按北京时间 (Asia/Shanghai) 计算")
    return value


def office_hours(text: str) -> tuple[time, time]:
    """``HH:MM-HH:MM`` (Beijing time): when the office opens and closes on a working day."""
    parts = text.strip().split("-")
    if len(parts) != 2:
        raise ValueError("应为 开始-结束，例如 08:30-17:30")
    try:
        opens, closes = (wall_time(p) for p in parts)
    except ValueError:
        raise ValueError("时刻应为 HH:MM（00:00–23:59），例如 08:30-17:30") from None
    if not opens < closes:
        raise ValueError(f"开始时间 {opens:%H:%M} 应早于结束时间 {closes:%H:%M}")
    return opens, closes


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs to know of its surroundings."""

    database_url: str = setting("QIFU_DATABASE_URL", "sqlite:///var/qifu.db",
                                "the database: a SQLite file (WAL) or `postgresql+psycopg://user@host/db`")
    sqlite_synchronous: str = setting("QIFU_SQLITE_SYNCHRONOUS", "NORMAL",
                                      "SQLite `synchronous`: `NORMAL` (a committed step survives a crash of the "
                                      "process, not a power loss) or `FULL` (also a power loss)",
                                      choice("NORMAL", "FULL"))
    sqlite_wal_autocheckpoint: int = setting(
        "QIFU_SQLITE_WAL_AUTOCHECKPOINT", "10000",
        "SQLite: copy the write-ahead log into the database file once it holds this many pages (4 KiB each); "
        "each copy syncs the disk, so a larger log syncs less often", positive_int)
    count_from: str = setting("QIFU_COUNT_FROM", "next_day",
                              "working days count from the day after receipt (`next_day`) or from it (`same_day`)",
                              choice("next_day", "same_day"))
    deadline_end_of_day: time = setting("QIFU_DEADLINE_END_OF_DAY", "23:59:59",
                                        "the Beijing wall time a deadline day ends at", wall_time)
    office_hours: tuple[time, time] = setting(
        "QIFU_OFFICE_HOURS", "08:30-17:30",
        "office hours on a working day (Beijing time); a case received outside them counts its same-day "
        "(当场/当日) limit from the next working day's opening", office_hours)
    expression_time_limit: float = setting("QIFU_EXPRESSION_TIME_LIMIT", "2",
                                           "CPU seconds one diagram expression or script may run", positive_float)
    max_step_tasks: int = setting("QIFU_MAX_STEP_TASKS", "5000",
                                  "tasks one step may complete (a loop without a wait state stops here)",
                                  positive_int)
    max_step_seconds: float = setting("QIFU_MAX_STEP_SECONDS", "10",
                                      "seconds one step's engine work may take", positive_float)
    max_diagram_bytes: int = setting("QIFU_MAX_DIAGRAM_BYTES", str(2 * 1024 * 1024),
                                     "the largest diagram file a deploy accepts", positive_int)
    workflow_cache_size: int = setting("QIFU_WORKFLOW_CACHE_SIZE", "512",
                                       "live workflows a process keeps between steps (0: none)", positive_int)
    verify_steps: bool = setting("QIFU_VERIFY_STEPS", "0",
                                 "`1`: every step checks its shortcuts against the database (the tests set it)",
                                 flag)
    history_key_file: str | None = setting(
        "QIFU_HISTORY_KEY_FILE", "",
        "the key file of the keyed history chain (HMAC keys, kept outside the database; created with one key "
        "if missing); unset: `history_keys` in `QIFU_VAR_DIR`")


S = TypeVar("S")


def read(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """An instance of the settings dataclass ``cls`` from ``environ`` (default ``os.environ``).

    Nested settings dataclasses are read the same way. Every wrong value is reported, in one error.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in overrides:
            values[f.name] = overrides[f.name]
            continue
        if "section" in f.metadata:
            try:
                values[f.name] = read(f.metadata["section"], env)
            except SettingsError as exc:
                problems.extend(exc.details.get("problems", [exc.message]))
            continue
        meta = f.metadata
        text = env.get(meta["env"])
        if text is None or text == "":
            continue
        try:
            values[f.name] = meta["parse"](text)
        except (ValueError, QifuError) as exc:
            problems.append(f"{meta['env']}={text!r}: {exc}")
    if problems:
        raise SettingsError("设置有误，未启动：" + "；".join(problems), problems=problems)
    return cls(**values)


def section(cls: type[T]) -> Any:
    """A field holding a nested settings dataclass (read from the same environment)."""
    return field(default_factory=cls, metadata={"section": cls})


def table(cls: type) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting of ``cls`` and its sections, for README and ``qifu``."""
    rows: list[tuple[str, str, str]] = []
    for f in dataclasses.fields(cls):
        if "section" in f.metadata:
            rows.extend(table(f.metadata["section"]))
        else:
            rows.append((f.metadata["env"], f.metadata["default"], f.metadata["doc"]))
    return rows
