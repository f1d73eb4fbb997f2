"""Pages of ``GET /v1/datasetio/rows`` over a dataset's row sources (a file,
then the rows appended to it), with opaque page tokens and filters.

``page_token`` is base64 of the position where the next page starts (in the
rows before filtering), so the next page seeks there instead of rereading.
``rows_in_page`` is 1 to the provider's ``max_rows_in_page``, or -1 for every
remaining row (a 400 when more than ``max_rows_in_page`` remain). With a
filter, ``total_count`` counts the matching rows, which reads the whole dataset.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Iterable, Protocol

from pydantic import BaseModel, ConfigDict, Field

from stack.apis.datasetio import PaginatedRowsResult
from stack.errors import BadRequestError

from .filters import parse_filter

SCAN_CHUNK = 1000  # rows read at a time while filtering
_PREFIX = "rows:"


class PagingConfig(BaseModel):
    """The paging settings every datasetio provider's config carries."""

    model_config = ConfigDict(extra="forbid")

    max_rows_in_page: int = Field(10_000, ge=1, le=1_000_000,
                                  description="Largest rows_in_page a request may ask for (more is a 400)")


class RowSource(Protocol):
    """Rows by position: a dataset file, or the rows appended to it."""

    async def count(self) -> int: ...

    async def read(self, start: int, stop: int) -> list[dict[str, Any]]: ...


def encode_token(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    """The position a page token stands for (0 without one); a 400 naming ``page_token`` if it is not ours."""
    if token is None or token == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not number.isdigit():
        raise BadRequestError("not a page token this server gave out; pass next_page_token of the previous page "
                              "unchanged, or none for the first page", field="page_token")
    return int(number)


class _Rows:
    """Several sources read as one sequence."""

    def __init__(self, sources: list[RowSource], counts: list[int]) -> None:
        self.sources, self.counts = sources, counts
        self.total = sum(counts)

    async def read(self, start: int, stop: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        base = 0
        for source, count in zip(self.sources, self.counts):
            lo, hi = max(start - base, 0), min(stop - base, count)
            if lo < hi:
                rows += await source.read(lo, hi)
            base += count
        return rows


def _check_size(rows_in_page: int, limit: int) -> None:
    if rows_in_page == -1:
        return
    if rows_in_page < 1:
        raise BadRequestError("must be -1 (every remaining row) or at least 1", field="rows_in_page")
    if rows_in_page > limit:
        raise BadRequestError(f"at most {limit} rows fit a page (max_rows_in_page); page with page_token",
                              field="rows_in_page")


def _all_remaining(remaining: int, limit: int) -> int:
    if remaining > limit:
        raise BadRequestError(
            f"-1 asks for every remaining row, and {remaining} remain: more than the {limit} a page holds "
            f"(max_rows_in_page); ask for at most {limit} and follow next_page_token", field="rows_in_page")
    return remaining


async def read_page(
    sources: list[RowSource],
    *,
    rows_in_page: int,
    page_token: str | None,
    filter_condition: str | None,
    columns: Iterable[str] | None,
    max_rows_in_page: int,
) -> PaginatedRowsResult:
    """One page of the rows of ``sources`` read in order, as the datasetio API answers it."""
    _check_size(rows_in_page, max_rows_in_page)
    start = decode_token(page_token)
    predicate = parse_filter(filter_condition, columns)
    rows = _Rows(sources, [await s.count() for s in sources])
    if start > rows.total:
        raise BadRequestError(f"points past the end of the dataset ({rows.total} rows)", field="page_token")
    if predicate is None:
        size = _all_remaining(rows.total - start, max_rows_in_page) if rows_in_page == -1 else rows_in_page
        stop = min(start + size, rows.total)
        page = await rows.read(start, stop)
        return PaginatedRowsResult(rows=page, total_count=rows.total,
                                   next_page_token=encode_token(stop) if stop < rows.total else None)

    page, matches, resume = [], 0, None
    size = rows_in_page if rows_in_page != -1 else None
    for chunk_start in range(0, rows.total, SCAN_CHUNK):
        chunk = await rows.read(chunk_start, min(chunk_start + SCAN_CHUNK, rows.total))
        for offset, row in enumerate(chunk):
            if not predicate(row):
                continue
            matches += 1
            position = chunk_start + offset
            if position < start:
                continue
            if size is None or len(page) < size:
                page.append(row)
                if size is None and len(page) > max_rows_in_page:
                    _all_remaining(len(page), max_rows_in_page)
            elif resume is None:
                resume = position
    return PaginatedRowsResult(rows=page, total_count=matches,
                               next_page_token=encode_token(resume) if resume is not None else None)
