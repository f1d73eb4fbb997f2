"""Turning a RAGDocument into text, and text into chunks of tokens (no I/O but files and http)."""

from __future__ import annotations

import base64
import binascii
import io
import mimetypes
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from stack.apis._content import URL, ImageContentItem, TextContentItem
from stack.errors import BadRequestError, UpstreamError, UpstreamTimeoutError

TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "text/csv", "application/json"}
HTML_TYPES = {"text/html", "application/xhtml+xml"}
PDF_TYPE = "application/pdf"
SUPPORTED = sorted(TEXT_TYPES | HTML_TYPES | {PDF_TYPE}) + ["text/*"]
_URI = re.compile(r"^(https?://|file://|data:)", re.IGNORECASE)
_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)$", re.DOTALL | re.IGNORECASE)

mimetypes.add_type("text/markdown", ".md")
mimetypes.add_type("text/markdown", ".markdown")


# -- tokens and chunks ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the tokens of ``text``: runs of word characters, and single punctuation marks."""
    return [m.span() for m in _TOKEN.finditer(text)]


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


@dataclass
class TextChunk:
    text: str
    token_count: int


def chunk_text(text: str, chunk_size: int, overlap: int | None = None) -> list[TextChunk]:
    """Windows of ``chunk_size`` tokens, each sharing ``overlap`` tokens (default a quarter) with the previous one.

    A chunk's text is the original text from its first token to its last, whitespace and all.
    """
    if chunk_size < 1:
        raise BadRequestError("must be at least 1", field="chunk_size_in_tokens")
    if overlap is None:
        overlap = chunk_size // 4
    overlap = max(0, min(overlap, chunk_size - 1))
    spans = tokenize(text)
    chunks: list[TextChunk] = []
    step = chunk_size - overlap
    start = 0
    while start < len(spans):
        window = spans[start:start + chunk_size]
        chunks.append(TextChunk(text[window[0][0]:window[-1][1]], len(window)))
        if start + chunk_size >= len(spans):
            break
        start += step
    return chunks


# -- HTML and PDF to text ------------------------------------------------------------------------

_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "td", "th", "tr", "ul",
}
_SKIP_TAGS = {"script", "style", "noscript", "template", "head"}


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.title: list[str] = []
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML page (scripts, styles and <head> dropped), one block a line."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    body = "\n".join(line for line in lines if line)
    title = " ".join("".join(parser.title).split())
    if title and not body.startswith(title):
        body = f"{title}\n{body}" if body else title
    return body


def pdf_to_text(data: bytes) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:  # pragma: no cover - pypdf is in the models extra
        raise BadRequestError(
            f"mime_type {PDF_TYPE!r} needs the pypdf package (pip install 'pypdf>=4')", field="mime_type"
        ) from None
    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise BadRequestError(f"not a readable PDF: {exc}", field="content") from None


# -- fetching ------------------------------------------------------------------------------------


def parse_data_url(url: str) -> tuple[bytes, str | None]:
    """The bytes and the mime type (None when the URL names none) of a ``data:`` URL."""
    match = _DATA_URL.match(url)
    if match is None:
        raise BadRequestError("malformed data URL (expected data:[<mime>][;base64],<data>)", field="content")
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    raw = match["data"]
    if "base64" in params:
        try:
            data = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadRequestError(f"data URL is not valid base64: {exc}", field="content") from None
    else:
        data = unquote(raw).encode()
    return data, (match["mime"].strip().lower() or None)


def _charset(mime_params: str | None) -> str:
    if mime_params:
        m = re.search(r"charset=([\w.-]+)", mime_params, re.IGNORECASE)
        if m:
            return m.group(1)
    return "utf-8"


@dataclass
class Fetched:
    data: bytes | str
    mime_type: str | None
    charset: str = "utf-8"


async def fetch_http(url: str, timeout: float, max_bytes: int) -> Fetched:
    import asyncio

    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url) as response:
                if response.status >= 400:
                    raise UpstreamError(f"fetching {url} failed: HTTP {response.status}")
                data = await response.content.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise BadRequestError(f"document {url} is larger than {max_bytes} bytes", field="content")
                content_type = response.headers.get("Content-Type", "")
    except asyncio.TimeoutError:
        raise UpstreamTimeoutError(f"fetching {url} timed out after {timeout:g}s") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"fetching {url} failed: {exc}") from None
    mime = content_type.split(";")[0].strip().lower() or None
    return Fetched(data, mime, _charset(content_type))


def read_file(uri: str, *, allowed: bool, max_bytes: int) -> Fetched:
    if not allowed:
        raise BadRequestError("file URIs are disabled on this server (allow_file_uris: false)", field="content")
    path = Path(unquote(urlparse(uri).path)) if uri.lower().startswith("file://") else Path(uri)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise BadRequestError(f"file {str(path)!r} is larger than {max_bytes} bytes", field="content")
        data = path.read_bytes()
    except OSError as exc:
        raise BadRequestError(f"cannot read {str(path)!r}: {exc.strerror or exc}", field="content") from None
    return Fetched(data, mimetypes.guess_type(path.name)[0])


def _guess_from_uri(uri: str) -> str | None:
    return mimetypes.guess_type(urlparse(uri).path)[0]


async def load_document(content: Any, mime_type: str | None, *, timeout: float = 30.0,
                        max_bytes: int = 50 << 20, allow_files: bool = True) -> str:
    """The text of a document's ``content`` (text, content items, or a URI) of ``mime_type`` (guessed when None)."""
    uri: str | None = None
    if isinstance(content, URL):
        uri = content.uri
    elif isinstance(content, str) and _URI.match(content):
        uri = content
    if uri is None:
        text = content_text(content)
        fetched = Fetched(text, mime_type or "text/plain")
    elif uri.lower().startswith("data:"):
        data, mime = parse_data_url(uri)
        params = uri.split(",", 1)[0]
        fetched = Fetched(data, mime, _charset(params))
    elif uri.lower().startswith(("http://", "https://")):
        fetched = await fetch_http(uri, timeout, max_bytes)
        fetched.mime_type = fetched.mime_type if fetched.mime_type not in (None, "application/octet-stream") \
            else _guess_from_uri(uri)
    else:
        fetched = read_file(uri, allowed=allow_files, max_bytes=max_bytes)
    mime = (mime_type or fetched.mime_type or "").split(";")[0].strip().lower()
    return to_text(fetched.data, mime, fetched.charset)


def to_text(data: bytes | str, mime: str, charset: str = "utf-8") -> str:
    if not mime:
        mime = PDF_TYPE if isinstance(data, bytes) and data.startswith(b"%PDF") else "text/plain"
    if mime == PDF_TYPE:
        if isinstance(data, str):
            raise BadRequestError("PDF content must be given as a URI or a base64 data URL", field="content")
        return pdf_to_text(data)
    if mime not in TEXT_TYPES and mime not in HTML_TYPES and not mime.startswith("text/"):
        raise BadRequestError(f"unsupported mime_type {mime!r}; supported: {', '.join(SUPPORTED)}", field="mime_type")
    if isinstance(data, bytes):
        try:
            data = data.decode(charset, errors="replace")
        except LookupError:
            data = data.decode("utf-8", errors="replace")
    return html_to_text(data) if mime in HTML_TYPES else data


def content_text(content: Any) -> str:
    """The text of interleaved content (images are skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, TextContentItem):
        return content.text
    if isinstance(content, ImageContentItem):
        return ""
    if isinstance(content, dict):
        return content.get("text", "") if content.get("type", "text") == "text" else ""
    if isinstance(content, list):
        return " ".join(t for t in (content_text(c) for c in content) if t)
    return str(content)
