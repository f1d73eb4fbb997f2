"""Turning a RAGDocument into text, and text into chunks of tokens (URLs are read by the stack's fetcher)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from stack.apis._content import URL, content_text
from stack.errors import BadRequestError
from stack.fetcher import URLFetcher

TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "text/csv", "application/json"}
HTML_TYPES = {"text/html", "application/xhtml+xml"}
PDF_TYPE = "application/pdf"
SUPPORTED = sorted(TEXT_TYPES | HTML_TYPES | {PDF_TYPE}) + ["text/*"]
_URI = re.compile(r"^(https?://|file:|data:)", re.IGNORECASE)



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


async def load_document(content: Any, mime_type: str | None, fetcher: URLFetcher, *, timeout: float = 30.0,
                        max_bytes: int = 50 << 20, allow_files: bool = True) -> str:
    """The text of a document's ``content`` (text, content items, or a URI) of ``mime_type`` (guessed when None).

    URIs are read by the stack's ``fetcher``, under the server's allow-list.
    """
    uri: str | None = None
    if isinstance(content, URL):
        uri = content.uri
    elif isinstance(content, str) and _URI.match(content):
        uri = content
    if uri is None:
        text = content_text(content, " ")
        return to_text(text, (mime_type or "text/plain").split(";")[0].strip().lower())
    if (uri.lower().startswith("file:") or uri.startswith("/")) and not allow_files:
        raise BadRequestError("file URIs are disabled for this rag tool (allow_file_uris: false)", field="content")
    fetched = await fetcher.fetch(uri, field="content", max_bytes=max_bytes, timeout=timeout)
    mime = (mime_type or fetched.mime_type or "").split(";")[0].strip().lower()
    return to_text(fetched.data, mime, fetched.charset or "utf-8")


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
