"""Dataset files read by position without loading them whole.

JSONL and CSV keep a sparse index: the byte offset of every ``STRIDE``-th
row, built once by one pass over the file and cached per (path, mtime, size),
so a page seeks to the nearest indexed row and reads on from there. Parquet
pages read only the row groups they overlap. Everything here is blocking:
callers run it in a thread.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterator, Mapping

from stack.apis._types import ParamType
from stack.errors import BadRequestError

from providers.utils.datasetio.rows import from_text

STRIDE = 1000
FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
               ".pq": "parquet"}
_MIME_TYPES = {"application/jsonl": "jsonl", "application/x-ndjson": "jsonl", "application/x-jsonlines": "jsonl",
               "application/json": "jsonl", "text/csv": "csv", "application/vnd.apache.parquet": "parquet",
               "application/parquet": "parquet", "application/x-parquet": "parquet"}
_CACHE_SIZE = 64


def guess_format(name: str, mime_type: str | None = None) -> str | None:
    """jsonl, csv or parquet from a file name's extension, else its mime type."""
    return _EXTENSIONS.get(Path(name).suffix.lower()) or _MIME_TYPES.get((mime_type or "").lower())


@dataclass
class _Index:
    count: int
    offsets: list[int]  # byte offset of rows 0, STRIDE, 2*STRIDE, ...
    header: list[str] = field(default_factory=list)  # CSV only


class DatasetFile:
    """A JSONL, CSV or Parquet file whose rows are read by position."""

    def __init__(self, path: Path, fmt: str, schema: Mapping[str, ParamType]) -> None:
        self.path, self.format, self.schema = path, fmt, dict(schema)

    def _error(self, message: str) -> BadRequestError:
        return BadRequestError(f"{self.path.name}: {message}", field="url")

    def _stat_key(self) -> tuple[str, int, int]:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise self._error(f"cannot read the file: {exc.strerror or exc}") from None
        return str(self.path), st.st_mtime_ns, st.st_size

    # -- the index ---------------------------------------------------------------------------

    def index(self) -> _Index:
        """The file's sparse index, built on first use and rebuilt when the file changes."""
        key = self._stat_key()
        with _lock:
            cached = _indexes.get(key)
            if cached is not None:
                _indexes.move_to_end(key)
                return cached
        built = {"jsonl": self._index_jsonl, "csv": self._index_csv, "parquet": self._index_parquet}[self.format]()
        with _lock:
            _indexes[key] = built
            while len(_indexes) > _CACHE_SIZE:
                _indexes.popitem(last=False)
        return built

    def columns(self) -> list[str]:
        """Column names as the file declares them (the first row's keys for JSONL)."""
        if self.format == "csv":
            return self.index().header
        if self.format == "parquet":
            return list(self._parquet().schema_arrow.names)
        first = self.read(0, 1)
        return list(first[0]) if first else []

    def count(self) -> int:
        return self.index().count

    def _index_jsonl(self) -> _Index:
        offsets, count, position = [], 0, 0
        with self._open() as fh:
            for line in fh:
                if line.strip():
                    if count % STRIDE == 0:
                        offsets.append(position)
                    count += 1
                position += len(line)
        return _Index(count, offsets)

    def _index_csv(self) -> _Index:
        with self._open() as fh:
            lines = _Lines(fh)
            reader = csv.reader(lines)
            header = next(reader, None)
            if header is None:
                return _Index(0, [])
            offsets, count = [], 0
            while True:
                position = lines.position
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise self._error(f"not valid CSV near row {count + 1}: {exc}") from None
                if not record:
                    continue
                if count % STRIDE == 0:
                    offsets.append(position)
                count += 1
        return _Index(count, offsets, header)

    def _index_parquet(self) -> _Index:
        meta = self._parquet().metadata
        starts, total = [], 0
        for group in range(meta.num_row_groups):
            starts.append(total)
            total += meta.row_group(group).num_rows
        return _Index(total, starts)  # for Parquet: the first row of each row group

    # -- reading -----------------------------------------------------------------------------

    def _open(self):
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise self._error(f"cannot read the file: {exc.strerror or exc}") from None

    def _parquet(self):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise self._error(f"not a Parquet file: {exc}") from None

    def read(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Rows ``start`` to ``stop`` (exclusive)."""
        if stop <= start:
            return []
        index = self.index()
        if self.format == "parquet":
            return self._read_parquet(index, start, stop)
        anchor = start // STRIDE
        if anchor >= len(index.offsets):
            return []
        with self._open() as fh:
            fh.seek(index.offsets[anchor])
            rows = self._jsonl_rows(fh, anchor * STRIDE) if self.format == "jsonl" else self._csv_rows(fh, index)
            return list(islice(rows, start - anchor * STRIDE, stop - anchor * STRIDE))

    def _jsonl_rows(self, fh: io.BufferedReader, first: int) -> Iterator[dict[str, Any]]:
        number = first
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise self._error(f"row {number} is not valid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise self._error(f"row {number} is not a JSON object")
            number += 1
            yield row

    def _csv_rows(self, fh: io.BufferedReader, index: _Index) -> Iterator[dict[str, Any]]:
        types = [self.schema.get(name) for name in index.header]
        for record in csv.reader(_Lines(fh)):
            if record:
                yield {name: from_text(value, ptype) for name, ptype, value in zip(index.header, types, record)}

    def _read_parquet(self, index: _Index, start: int, stop: int) -> list[dict[str, Any]]:
        parquet = self._parquet()
        rows: list[dict[str, Any]] = []
        for group, first in enumerate(index.offsets):
            size = parquet.metadata.row_group(group).num_rows
            lo, hi = max(start, first), min(stop, first + size)
            if lo < hi:
                table = parquet.read_row_group(group)
                rows += table.slice(lo - first, hi - lo).to_pylist()
        return rows


class _Lines:
    """Text lines of a binary file for ``csv.reader``, counting the bytes consumed."""

    def __init__(self, fh: io.BufferedReader) -> None:
        self.fh, self.position = fh, fh.tell()

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = self.fh.readline()
        if not line:
            raise StopIteration
        self.position += len(line)
        return line.decode("utf-8-sig" if self.position == len(line) else "utf-8", errors="replace")


_lock = threading.Lock()
_indexes: OrderedDict[tuple[str, int, int], _Index] = OrderedDict()
