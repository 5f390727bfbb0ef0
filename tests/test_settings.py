"""One settings object, read once from the environment, and README's table is its table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.settings import EngineSettings, SettingsError, read, table
from web.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting_with_its_default() -> None:
    text = README.read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `(QIFU_[A-Z_]+)` \| ([^|]+) \|", text, re.M))
    expected = {env: (f"`{default}`" if default else "—") for env, default, _ in table(Settings)}
    assert {k: v.strip() for k, v in listed.items()} == expected


def test_every_wrong_value_is_refused_at_once_naming_each() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"QIFU_TRUSTED_PROXIES": "-1", "QIFU_COUNT_FROM": "today",
                           "QIFU_BASE_URL": "ftp://x", "QIFU_SQLITE_SYNCHRONOUS": "OFF"})
    for name in ("QIFU_TRUSTED_PROXIES", "QIFU_COUNT_FROM", "QIFU_BASE_URL", "QIFU_SQLITE_SYNCHRONOUS"):
        assert name in info.value.message


def test_values_reach_the_engine_and_the_app(tmp_path: Path) -> None:
    from web.app import create_app
    from web.engine import build_engine

    url = f"sqlite:///{tmp_path / 'x.db'}"
    settings = Settings.from_env({"QIFU_DATABASE_URL": url, "QIFU_MAX_DIAGRAM_BYTES": "1234",
                                  "QIFU_WORKFLOW_CACHE_SIZE": "7", "QIFU_PUBLIC_RATE_LIMIT": "9",
                                  "QIFU_VAR_DIR": str(tmp_path / "var")})
    engine = build_engine(settings)
    assert (engine.url, engine.repository.max_bytes, engine.cache.size) == (url, 1234, 7)
    assert "transfer" in engine.services.topics()  # handlers registered by build_engine, not on import
    app = create_app(engine=engine, settings=settings)
    assert app.config["QIFU_PUBLIC_RATE_LIMIT"] == 9
    assert read(EngineSettings, {}).database_url == "sqlite:///var/qifu.db"
