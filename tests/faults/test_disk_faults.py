"""SQLite on a full disk and on a read-only file: a clear 503, never corruption (issue #11, faults).

- **Full disk, under load.** The database lives on a small tmpfs; while intakes arrive, a filler takes the
  last free byte. Writes get a 503 saying the disk is full (JSON for the API, a Chinese page for people);
  ``PRAGMA integrity_check`` passes while the disk is still full; once space is freed the same server
  accepts the refused intakes again (same keys), and every case is whole.
- **Read-only database** (the directory, or the file alone): the server starts over a database it cannot
  write — the volume mounted read-only, or as a non-root user a file it may not write. Every request that
  needs the database gets a 503 saying it is read-only, the file is not changed by a single byte, and when
  the database is writable again the same server serves by itself. With the file alone read-only SQLite
  opens it read-only without a word; ``engine/db.py`` refuses such a write connection, or the pool would
  keep it (and keep refusing writes) after the file is fixed — this test fails without that.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
import time
from pathlib import Path

import pytest

from engine import db

from .checks import assert_audit_verifies, assert_intake_whole, sqlite_integrity
from .conftest import ReadOnly, Site, can_mount, make_site, tmpfs
from .procs import Answer, WebServer, request


def _ack(site: Site, server: WebServer, key: str, acked: dict[str, str], tries: int = 50) -> Answer:
    """Submit ``key`` until it is acknowledged (a 503 is retried; anything else is returned)."""
    for _ in range(tries):
        answer = site.submit(server, key)
        if answer.status in (200, 201):
            acked[key] = answer.json["business_key"]
            return answer
        if answer.status != 503:
            return answer
        time.sleep(0.2)
    return answer


def _fill(disk: Path) -> Path:
    """Write a file until the file system has no byte left (ENOSPC), also for root."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_full_disk_under_load_gives_503_and_no_corruption(sqlite_template: Path, tmp_path: Path) -> None:
    if not can_mount():
        pytest.skip("a full disk needs a tmpfs, and mounting one needs root (CAP_SYS_ADMIN)")
    disk = tmp_path / "disk"
    with tmpfs(disk, "16m"):
        path = disk / "qifu.db"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
        site = make_site(url, tmp_path)
        web = site.web().start()
        acked: dict[str, str] = {}
        refused: dict[str, Answer] = {}
        pages: list[Answer] = []
        try:
            web.wait_ready()
            for i in range(3):
                assert _ack(site, web, f"disk-{i}", acked).status in (200, 201)
            filler = _fill(disk)
            for i in range(3, 60):  # the stream goes on; the database's own slack fills up first
                key = f"disk-{i}"
                answer = site.submit(web, key)
                if answer.status in (200, 201):
                    acked[key] = answer.json["business_key"]
                else:
                    refused[key] = answer
                pages.append(request("GET", f"{web.base}/submit"))
                if len(refused) >= 3 and any(p.status == 503 for p in pages):
                    break
            assert refused, "the disk filled up but every write still succeeded"
            full_integrity = sqlite_integrity(str(path))
            filler.unlink()  # space again: the same server takes the refused intakes, same keys
            for key in refused:
                assert _ack(site, web, key, acked).status in (200, 201), web.log()
            after = request("GET", f"{web.base}/submit")
            assert web.running() and web.starts == 1
        finally:
            web.kill9()
            db.dispose(url)

        for key, answer in refused.items():
            assert answer.status == 503, (key, answer.status, answer.text[:500])
            assert answer.json["error"]["code"] == "database_full", answer.text
            assert "磁盘已满" in answer.json["error"]["message"] and int(answer.headers["retry-after"]) > 0
        page = next(p for p in pages if p.status == 503)
        assert page.headers["content-type"].startswith("text/html")
        assert "服务暂不可用（503）" in page.text and "磁盘已满" in page.text and "Traceback" not in page.text
        assert after.status == 200
        assert full_integrity == "ok"
        assert sqlite_integrity(str(path)) == "ok"
        assert_intake_whole(site.engine, site.sent, acked)
        assert_audit_verifies(site.env)
        db.dispose(url)


@pytest.mark.parametrize("what", ["directory", "file"])
def test_sqlite_read_only_database_gives_503_and_service_resumes(what: str, sqlite_template: Path,
                                                                 tmp_path: Path) -> None:
    import os

    if not can_mount() and os.geteuid() == 0:
        pytest.skip("as root only a read-only mount denies writes, and mounting needs CAP_SYS_ADMIN")
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "qifu.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    site = make_site(url, tmp_path)
    db.dispose(url)  # the last connection checkpoints the WAL away: the file alone holds the database
    before = _sha256(path)
    read_only = ReadOnly(folder if what == "directory" else path)
    web = site.web()
    acked: dict[str, str] = {}
    read_only.on()
    try:
        web.start().wait_ready()
        refused = site.submit(web, "ro-0")
        page = request("GET", f"{web.base}/submit")
        json_page = request("GET", f"{web.base}/submit", headers={"Accept": "application/json"})
        during_integrity = sqlite_integrity(str(path), immutable=True)
        unchanged = _sha256(path) == before
        read_only.off()
        for key in ("ro-0", "ro-1"):  # the very first request after the fix goes through: no connection
            resumed = site.submit(web, key)  # the pool kept from the read-only time refuses it
            assert resumed.status == 201, (resumed.status, resumed.text[:500], web.log())
            acked[key] = resumed.json["business_key"]
        after = request("GET", f"{web.base}/submit")
        assert web.running() and web.starts == 1
    finally:
        read_only.off()
        web.kill9()
        db.dispose(url)

    assert refused.status == 503, (refused.status, refused.text[:500])
    assert refused.json["error"]["code"] == "database_read_only", refused.text
    assert "只读" in refused.json["error"]["message"] and int(refused.headers["retry-after"]) > 0
    assert page.status == 503 and page.headers["content-type"].startswith("text/html")
    assert "服务暂不可用（503）" in page.text and "只读" in page.text and "Traceback" not in page.text
    assert json_page.status == 503 and json_page.json["error"]["code"] == "database_read_only"
    assert unchanged, "the read-only database file was changed"
    assert during_integrity == "ok"
    assert after.status == 200
    assert sqlite_integrity(str(path)) == "ok"
    assert_intake_whole(site.engine, site.sent, acked)
    assert_audit_verifies(site.env)
