"""HTML to PDF with Debian's headless Chromium (``/usr/bin/chromium``), for the 简报's PDF.

A subprocess per document, in a throwaway profile directory: ``chromium --headless --no-sandbox
--print-to-pdf=…`` on the HTML written to a temporary file. The document must be self-contained (inline CSS
and SVG, no network). Chinese text needs a CJK font (Debian's ``fonts-noto-cjk``, which the README's set-up
and CI install). Chromium missing, failing or too slow is a :class:`~engine.errors.QifuError` with a Chinese
message (the page answers it as a 503-free error page, the CLI as its usual refusal).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.errors import QifuError

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
TIMEOUT_SECONDS = 120


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(html: str, *, chromium: str | None = None, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """The PDF of ``html`` as Chromium prints it (A4, backgrounds on, no header or footer)."""
    exe = chromium or find_chromium()
    if not exe or not (os.access(exe, os.X_OK) or shutil.which(exe)):
        raise QifuError("无法生成 PDF：未找到 Chromium 浏览器（/usr/bin/chromium）。"
                        "请安装：apt-get install chromium fonts-noto-cjk，或改用 HTML 格式。")
    with tempfile.TemporaryDirectory(prefix="qifu-pdf-") as tmp:
        source, target = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        source.write_text(html, encoding="utf-8")
        command = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                   f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
                   f"--print-to-pdf={target}", source.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False,
                                  env={**os.environ, "HOME": tmp})
        except subprocess.TimeoutExpired:
            raise QifuError(f"生成 PDF 超时（超过 {timeout:.0f} 秒），请稍后重试或改用 HTML 格式") from None
        except OSError as exc:
            raise QifuError(f"无法启动 Chromium 生成 PDF：{exc.strerror or exc}") from None
        if not target.exists() or target.stat().st_size == 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"退出码 {done.returncode}"]
            raise QifuError(f"Chromium 未能生成 PDF：{detail[0][:200]}")
        return target.read_bytes()
