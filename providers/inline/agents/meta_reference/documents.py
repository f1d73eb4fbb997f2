"""Documents attached to a turn: inline text, and URLs downloaded into the session's folder of files
(through the stack's one fetcher) for the code interpreter to read, as llama-stack 0.1.0 did."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from stack.apis._content import URL, TextContentItem
from stack.apis.agents import Document
from stack.fetcher import URLFetcher

_SCHEMES = ("http://", "https://", "file://", "data:")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def document_url(doc: Document) -> str | None:
    """The URL a document names, None for inline content."""
    content = doc.content
    if isinstance(content, URL):
        return content.uri
    if isinstance(content, str) and content.lower().startswith(_SCHEMES):
        return content
    return None


def document_text(doc: Document) -> str:
    """The inline text of a document that names no URL."""
    content = doc.content
    if isinstance(content, str):
        return content
    items = content if isinstance(content, list) else [content]
    return "\n".join(item.text for item in items if isinstance(item, TextContentItem))


def file_name(url: str, mime_type: str | None) -> str:
    """A safe file name for what ``url`` held: its own base name, else ``document`` with the type's extension."""
    base = "" if url.lower().startswith("data:") else os.path.basename(unquote(urlsplit(url).path))
    base = _UNSAFE.sub("_", base).lstrip("._")[:120]
    return base or "document" + (mimetypes.guess_extension(mime_type or "") or "")


def file_note(path: Path) -> str:
    """What the model is told of a downloaded document (llama-stack 0.1.0's words)."""
    return f'# User provided a file accessible to you at "{path}"\nYou can use code_interpreter to load and inspect it.'


class SessionFiles:
    """One folder per session under ``root``, holding the documents its turns downloaded."""

    def __init__(self, root: Path, fetcher: URLFetcher, max_bytes: int) -> None:
        self.root = root
        self.fetcher = fetcher
        self.max_bytes = max_bytes

    def folder(self, session_id: str) -> Path:
        return self.root / session_id

    async def download(self, session_id: str, url: str, mime_type: str | None, *, field: str) -> Path:
        """Fetch ``url`` (allow-list and limits of ``server.fetch``) into the session's folder; its path."""
        fetched = await self.fetcher.fetch(url, field=field, max_bytes=self.max_bytes)
        name = file_name(fetched.url, fetched.mime_type or mime_type)
        folder = self.folder(session_id)

        def write() -> Path:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            if path.exists():  # another document of the session had that name: keep both
                path = folder / f"{uuid.uuid4().hex[:8]}-{name}"
            path.write_bytes(fetched.data)
            return path

        return await asyncio.to_thread(write)

    async def remove(self, session_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.folder(session_id), True)
