"""Uploaded diagrams waiting for the designer's confirmation: held on the server, never trusted from the browser.

An upload that passed validation is written under ``QIFU_VAR_DIR/pending-deploys/<id>/`` (the directory the
app keeps attachments in, readable by the owner only): the files as uploaded and a manifest with who
uploaded them, when, each file's SHA-256 and the newest version of each process at that moment. The page
shows the changes and carries only the random id (``secrets.token_urlsafe``). Confirming reads everything
back from here: the id must belong to the same user and be younger than :data:`MAX_AGE`, and every file
must still have the hash the summary was made from. Then the repository validates and deploys again (its
validation is the one validation), refusing if another deploy came in between. Held uploads are removed
on confirmation, on cancel, and once expired (at the next upload).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.clock import to_utc
from engine.errors import QifuError

MAX_AGE = timedelta(minutes=30)
_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")


class UploadExpired(QifuError):
    code = "upload_expired"


@dataclass(frozen=True)
class HeldFile:
    filename: str | None
    content: bytes
    sha256: str


@dataclass(frozen=True)
class HeldUpload:
    id: str
    user_id: int
    created_at: datetime
    files: list[HeldFile]
    expect_latest: dict[str, int | None]


class PendingUploads:
    def __init__(self, var_dir: str | Path) -> None:
        self.root = Path(var_dir) / "pending-deploys"

    def hold(self, user_id: int, files: list[tuple[str | None, bytes]], expect_latest: dict[str, int | None],
             now: datetime) -> str:
        """Keep ``files`` for ``user_id`` until confirmed; returns the random id the page carries."""
        self.purge(now)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        upload_id = secrets.token_urlsafe(24)
        folder = self.root / upload_id
        folder.mkdir(mode=0o700)
        manifest: dict[str, Any] = {"user_id": user_id, "created_at": now.isoformat(), "expect_latest": expect_latest,
                                    "files": []}
        for n, (filename, content) in enumerate(files):
            (folder / f"{n}.bpmn").write_bytes(content)
            manifest["files"].append({"filename": filename, "sha256": hashlib.sha256(content).hexdigest()})
        (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        return upload_id

    def get(self, upload_id: str, user_id: int, now: datetime) -> HeldUpload:
        """The held upload, re-read and re-hashed; :class:`UploadExpired` if it is gone, expired or not yours."""
        gone = UploadExpired("待确认的上传已失效（超过 30 分钟、已部署或已取消），请重新上传")
        if not isinstance(upload_id, str) or not _ID.match(upload_id):
            raise gone
        folder = self.root / upload_id
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise gone from None
        created = to_utc(manifest["created_at"])
        if manifest.get("user_id") != user_id or now - created > MAX_AGE:
            raise gone
        files = []
        for n, entry in enumerate(manifest["files"]):
            try:
                content = (folder / f"{n}.bpmn").read_bytes()
            except OSError:
                raise gone from None
            if hashlib.sha256(content).hexdigest() != entry["sha256"]:
                raise UploadExpired("待确认的文件内容与核对时不一致，请重新上传")
            files.append(HeldFile(entry.get("filename"), content, entry["sha256"]))
        return HeldUpload(upload_id, user_id, created, files, dict(manifest.get("expect_latest") or {}))

    def drop(self, upload_id: str) -> None:
        if isinstance(upload_id, str) and _ID.match(upload_id):
            shutil.rmtree(self.root / upload_id, ignore_errors=True)

    def purge(self, now: datetime) -> int:
        """Remove held uploads older than :data:`MAX_AGE`; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            try:
                created = to_utc(json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["created_at"])
                expired = now - created > MAX_AGE
            except (OSError, ValueError, KeyError):
                expired = True
            if expired:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def count(self) -> int:
        return sum(1 for _ in self.root.iterdir()) if self.root.is_dir() else 0

