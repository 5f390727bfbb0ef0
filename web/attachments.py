"""Attachments: checked (size, extension AND magic bytes), stored by content hash, one row per upload.

The bytes go to ``<ATTACHMENT_DIR>/<sha256>`` (``var/attachments`` by default), never into case data: the
instance state and the history stay small, and the same file uploaded twice is stored once. A file is
accepted only when its extension is on the allow-list and its first bytes match that type — a renamed
executable or an HTML page named ``.pdf`` is refused. Office files are ZIP containers, so a .docx must
contain ``word/document.xml`` and a .xlsx ``xl/workbook.xml``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from engine.errors import QifuError

from .models import Attachment

MIME = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXTENSIONS = {"pdf": "pdf", "png": "png", "jpg": "jpg", "jpeg": "jpg", "docx": "docx", "xlsx": "xlsx"}
ZIP_MEMBER = {"docx": "word/document.xml", "xlsx": "xl/workbook.xml"}


class AttachmentRefused(QifuError):
    code = "attachment_refused"


@dataclass
class Checked:
    kind: str
    data: bytes
    sha256: str
    filename: str


def _magic_ok(kind: str, data: bytes) -> bool:
    if kind == "pdf":
        return data.startswith(b"%PDF-")
    if kind == "png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if kind == "jpg":
        return data.startswith(b"\xff\xd8\xff")
    if kind in ZIP_MEMBER:
        if not data.startswith(b"PK\x03\x04"):
            return False
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return ZIP_MEMBER[kind] in zf.namelist()
        except zipfile.BadZipFile:
            return False
    return False


def display_name(filename: str) -> str:
    """The name shown in lists: the last path part, control characters removed, at most 200 characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[-200:] or "附件"


def check(filename: str, stream: BinaryIO, max_bytes: int) -> Checked:
    """Read and check one upload; refuses with a Chinese message naming what is wrong."""
    name = display_name(filename)
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    kind = EXTENSIONS.get(ext)
    if kind is None:
        raise AttachmentRefused(f"不支持的文件类型“.{ext}”：只接受 PDF、PNG、JPG、DOCX、XLSX" if ext else
                                "文件缺少扩展名：只接受 PDF、PNG、JPG、DOCX、XLSX")
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AttachmentRefused(f"文件超过 {max_bytes // (1024 * 1024)} MiB 上限")
    if not data:
        raise AttachmentRefused("文件为空")
    if not _magic_ok(kind, data):
        raise AttachmentRefused(f"文件内容与扩展名“.{ext}”不符，已拒绝")
    return Checked(kind, data, hashlib.sha256(data).hexdigest(), name)


def store(session: Session, directory: str | os.PathLike[str], checked: Checked, *, instance_id: int,
          task_guid: str | None, user: str, now: datetime) -> Attachment:
    """Write the bytes (once per content, atomically) and add the row in ``session``."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / checked.sha256
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(checked.data)
        os.replace(tmp, target)
    row = Attachment(instance_id=instance_id, task_guid=task_guid, filename=checked.filename, kind=checked.kind,
                     size=len(checked.data), sha256=checked.sha256, uploaded_by=user, uploaded_at=now)
    session.add(row)
    session.flush()
    return row


def path_of(directory: str | os.PathLike[str], row: Attachment) -> Path:
    return Path(directory) / row.sha256
