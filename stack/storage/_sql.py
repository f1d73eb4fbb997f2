"""The SQL store interface: typed tables, portable queries, bound parameters.

The statements are built here once; a backend only supplies its placeholder,
column types, value codecs and a way to run a statement.
"""

from __future__ import annotations

import itertools
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, ClassVar, Literal

from ._errors import StorageError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIER = 63  # PostgreSQL silently truncates longer names

Row = dict[str, Any]
Schema = dict[str, "ColumnType | None"]  # None: a column type we do not convert


class ColumnType(str, Enum):
    """Portable column types. JSON holds dicts/lists; TIMESTAMP holds datetimes
    (naive ones are taken as UTC; read back as aware UTC datetimes)."""

    INTEGER = "integer"
    REAL = "real"
    FLOAT = "real"
    TEXT = "text"
    JSON = "json"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    BLOB = "blob"  # bytes, stored and read back as they are


# what each type accepts from callers, so both backends accept the same values
_PYTHON_TYPES: dict[ColumnType, tuple[type, ...]] = {
    ColumnType.INTEGER: (int,),
    ColumnType.REAL: (int, float),
    ColumnType.TEXT: (str,),
    ColumnType.BOOLEAN: (bool,),
    ColumnType.TIMESTAMP: (datetime,),
    ColumnType.BLOB: (bytes,),
}


_MAX_PARAMS = 30_000  # bound parameters per statement: SQLite allows 32,766, PostgreSQL 65,535
_NONE = frozenset({type(None)})
_NOTHING: frozenset[type] = frozenset()


class JsonText:
    """A JSON column's value already encoded by the caller (``text`` must be valid JSON): bound
    as it is, with no encoding pass. For hot writers that encode many values at C speed at once
    (the span store); the caller vouches for what the store's own encoding would check (on
    SQLite, that non-finite floats keep their ``NaN`` / ``Infinity`` spelling)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JsonText({self.text!r:.60})"


@dataclass(frozen=True)
class JsonTest:
    """A test on the value at ``path`` (array indexes and object keys) inside a JSON value.

    ``present`` / ``absent``: the path exists (a JSON null exists) or not. ``eq`` / ``ne``
    compare a string, number, boolean or None as Python does (``True == 1``; ``ne`` holds
    when the path is absent). ``gt`` / ``lt``: a string against strings (by code point), a
    number or boolean against numbers and booleans; other pairs do not match.
    """

    path: tuple[int | str, ...]
    op: Literal["present", "absent", "eq", "ne", "gt", "lt"]
    value: str | int | float | bool | None = None


@dataclass(frozen=True)
class JsonAll:
    """Every test holds."""

    tests: tuple[JsonPredicate, ...]


@dataclass(frozen=True)
class JsonAny:
    """At least one test holds."""

    tests: tuple[JsonPredicate, ...]


JsonPredicate = JsonTest | JsonAll | JsonAny


@dataclass(frozen=True)
class JsonMatch:
    """Rows with an element of the JSON array column ``column`` that passes ``predicate``; with
    ``share``, rows whose ``share`` column equals that of any such row (a whole trace, say)."""

    column: str
    predicate: JsonPredicate
    share: str | None = None


def check_identifier(name: object, what: str = "identifier") -> str:
    """`name` if it is a safe table/column name, else ValueError."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits and '_', not starting with a digit"
        )
    if len(name) > _MAX_IDENTIFIER:
        raise ValueError(f"invalid {what} {name!r}: longer than {_MAX_IDENTIFIER} characters")
    return name


def quote(name: str) -> str:
    return f'"{name}"'


def _on_conflict(keys: Sequence[str], columns: Sequence[str]) -> str:
    """The upsert clause: rows with the same ``keys`` get the other columns' new values."""
    rest = [c for c in columns if c not in keys]
    conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)})"
    if not rest:
        return conflict + " DO NOTHING"
    return conflict + " DO UPDATE SET " + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in rest)


def to_utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"TIMESTAMP values must be datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class SqlStore(ABC):
    """An async store of simple typed tables.

    With a `namespace`, table `t` is stored as `<namespace>_t`; callers always
    use the short name.
    """

    placeholder: ClassVar[str]
    #: per column type, the Python types this backend binds unchanged (``upsert_many`` skips
    #: ``_encode_value`` for them); a backend may add its own
    _binds_as_is: ClassVar[dict[ColumnType, frozenset[type]]] = {
        ColumnType.TEXT: frozenset({str}), ColumnType.INTEGER: frozenset({int}), ColumnType.BLOB: frozenset({bytes})}

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace
        self._schemas: dict[str, Schema] = {}
        self._closed = False

    # -- public API --------------------------------------------------------

    async def create_table(
        self,
        name: str,
        columns: Mapping[str, ColumnType],
        primary_key: str | Sequence[str],
    ) -> None:
        """Create table `name` if missing; add any of `columns` it lacks."""
        table = self._table(name)
        if not columns:
            raise ValueError(f"table {name!r} needs at least one column")
        col_sql = {}
        for col, ctype in columns.items():
            check_identifier(col, "column name")
            col_sql[col] = self._column_sql(ColumnType(ctype))
        keys = (primary_key,) if isinstance(primary_key, str) else tuple(primary_key)
        if not keys:
            raise ValueError(f"table {name!r} needs a primary key")
        for key in keys:
            if key not in columns:
                raise ValueError(f"primary key column {key!r} is not a column of {name!r}")
        defs = [f"{quote(c)} {t}" for c, t in col_sql.items()]
        defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in keys)})")
        create = f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(defs)})"
        adds = {c: f"ALTER TABLE {quote(table)} ADD COLUMN {quote(c)} {t}" for c, t in col_sql.items()}
        self._check_open()
        self._schemas[table] = await self._create_table(table, create, adds)

    async def insert(self, table: str, row: Mapping[str, Any]) -> None:
        """Insert one row; DuplicateKeyError if its primary key exists."""
        sql, params = await self._insert_sql(table, row)
        await self._execute(sql, params)

    async def upsert(self, table: str, row: Mapping[str, Any], key_columns: Sequence[str]) -> None:
        """Insert one row, or update the row with the same `key_columns`
        (which must be the table's primary key)."""
        keys = [key_columns] if isinstance(key_columns, str) else list(key_columns)
        if not keys:
            raise ValueError("upsert needs key_columns")
        for key in keys:
            if key not in row:
                raise ValueError(f"upsert key column {key!r} is missing from the row")
        sql, params = await self._insert_sql(table, row)
        await self._execute(sql + _on_conflict(keys, list(row)), params)

    async def upsert_many(self, table: str, rows: Sequence[Mapping[str, Any]], key_columns: Sequence[str]) -> None:
        """``upsert`` every row (all with the same columns) in one transaction: one commit for a batch."""
        if not rows:
            return
        columns = list(rows[0])
        values_of = operator.itemgetter(*columns)
        column_set = rows[0].keys()
        for row in rows:
            if row.keys() != column_set:  # one comparison in C: this runs per row of every batch
                raise ValueError(f"upsert_many rows must all have the columns {columns!r}")
        values = map(values_of, rows) if len(columns) > 1 else ((row[columns[0]],) for row in rows)
        await self._upsert(table, columns, values, key_columns, "upsert_many")

    async def upsert_values(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                            key_columns: Sequence[str]) -> None:
        """``upsert_many`` of rows given as values in ``columns``' order (a tuple a row): for writers
        that make many rows at once and need no dict of each (the span writer)."""
        if not rows:
            return
        width = len(columns)
        if not isinstance(rows[0], (tuple, list)):  # a dict would pass the width check with its keys
            raise ValueError(f"upsert_values rows are tuples of values, not {type(rows[0]).__name__}")
        if any(len(row) != width for row in rows):
            raise ValueError(f"upsert_values rows must each have {width} values, one per column of {list(columns)!r}")
        await self._upsert(table, list(columns), rows, key_columns, "upsert_values")

    async def _upsert(self, table: str, columns: list[str], rows: Iterable[Sequence[Any]],
                      key_columns: Sequence[str], caller: str) -> None:
        keys = [key_columns] if isinstance(key_columns, str) else list(key_columns)
        if not keys or any(k not in columns for k in keys):
            raise ValueError(f"{caller} key columns {keys!r} must be columns of the rows")
        physical, schema = await self._schema(table)
        types = [self._column(schema, c, table) for c in columns]  # checked once for the batch
        # per column, the Python types this backend binds as they are (None too): a row whose
        # values all have them is checked in C (one ``all(map(...))``) and bound untouched
        bound = [self._binds_as_is.get(t, _NOTHING) | _NONE for t in types]
        key_of = operator.itemgetter(*(columns.index(k) for k in keys))
        latest: dict[Any, Any] = {}  # one statement may not touch a row twice (PostgreSQL): last wins
        for values in rows:
            if not all(map(frozenset.__contains__, bound, map(type, values))):
                values = [v if type(v) in ok else self._encode_value(t, v, c)
                          for c, t, ok, v in zip(columns, types, bound, values)]
            latest[key_of(values)] = values
        # multi-row statements: a driver call (and, for SQLite, a GIL hand-off) per statement, not per row
        per_statement = max(1, _MAX_PARAMS // len(columns))
        values = list(latest.values())
        head = f"INSERT INTO {quote(physical)} ({', '.join(quote(c) for c in columns)}) VALUES "
        one = f"({', '.join([self.placeholder] * len(columns))})"
        statements = []
        for start in range(0, len(values), per_statement):
            chunk = values[start:start + per_statement]
            statements.append((head + ", ".join([one] * len(chunk)) + _on_conflict(keys, columns),
                               list(itertools.chain.from_iterable(chunk))))
        await self._execute_batch(statements)

    async def fetch_all(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        order_by: Sequence[tuple[str, Literal["asc", "desc"]]] | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Rows whose columns equal every value in `where` (None matches NULL)."""
        physical, schema = await self._schema(table)
        cols = ", ".join(quote(c) for c in schema)
        cond, params = self._where(schema, where, table)
        sql = f"SELECT {cols} FROM {quote(physical)}{cond}"
        order = self._order_sql(schema, order_by or (), table)
        if order:
            sql += " ORDER BY " + order
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"limit must be a non-negative int, got {limit!r}")
            sql += f" LIMIT {limit}"
        rows = await self._query(sql, params)
        types = list(schema.values())
        return [
            {col: self._decode(t, v) for col, t, v in zip(schema, types, values)}
            for values in rows
        ]

    async def select(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        match: JsonMatch | None = None,
        first_per: str | None = None,
        order_by: Sequence[tuple[str, str] | tuple[str, str, str]] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """``columns`` of the rows matching ``where`` and ``match``; with ``first_per``, only the
        first row (in ``order_by``) of each value of that column. ``order_by`` items are
        (column, "asc" | "desc") or (column, direction, "first" | "last") placing NULLs."""
        physical, schema = await self._schema(table)
        names = list(columns or schema)
        for col in names:
            self._column(schema, col, table)
        cond, params = self._where(schema, where, table)
        terms = [cond[len(" WHERE "):]] if cond else []
        if match is not None:
            self._column(schema, match.column, table)
            if match.share is None:  # the row's own array
                elements, element = self._json_elements(quote(match.column))
                predicate, more = self._json_predicate(element, match.predicate)
                terms.append(f"EXISTS (SELECT 1 FROM {elements} WHERE {predicate})")
            else:  # any row sharing its ``share`` value
                self._column(schema, match.share, table)
                elements, element = self._json_elements(f"m.{quote(match.column)}")
                predicate, more = self._json_predicate(element, match.predicate)
                terms.append(f"{quote(match.share)} IN (SELECT m.{quote(match.share)} FROM {quote(physical)} m, "
                             f"{elements} WHERE {predicate})")
            params += more
        order = self._order_sql(schema, order_by or (), table)
        cols = ", ".join(quote(c) for c in names)
        sql = f"SELECT {cols} FROM {quote(physical)}" + (" WHERE " + " AND ".join(terms) if terms else "")
        if first_per is not None:
            self._column(schema, first_per, table)
            window = f"ROW_NUMBER() OVER (PARTITION BY {quote(first_per)}{' ORDER BY ' + order if order else ''})"
            # inside: the selected columns and those the outer ORDER BY names, no more (the
            # window sorts every matching row: a wide column carried along costs most of it)
            inner = list(dict.fromkeys([*names, *(item[0] for item in order_by or ())]))
            inner_cols = ", ".join(quote(c) for c in inner)
            sql = sql.replace(f"SELECT {cols} FROM", f"SELECT {inner_cols}, {window} AS first__ FROM", 1)
            sql = f"SELECT {cols} FROM ({sql}) ranked WHERE first__ = 1"
        if order:
            sql += " ORDER BY " + order
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if limit is not None:
            sql += f" LIMIT {limit}"
        if offset:
            sql += f" OFFSET {offset}" if limit is not None else f" {self._offset_only(offset)}"
        types = [schema[c] for c in names]
        return [{col: self._decode(t, v) for col, t, v in zip(names, types, values)}
                for values in await self._query(sql, params)]

    async def create_index(self, table: str, name: str, columns: Sequence[str]) -> None:
        """An index on ``columns`` of ``table`` (made once; kept when it exists)."""
        physical, schema = await self._schema(table)
        for col in columns:
            self._column(schema, col, table)
        index = check_identifier(f"{physical}_{check_identifier(name, 'index name')}", "index name")
        await self._create_index(physical, f"CREATE INDEX IF NOT EXISTS {quote(index)} ON {quote(physical)} "
                                           f"({', '.join(quote(c) for c in columns)})")

    async def delete_where(self, table: str, column: str, *, below: float) -> int:
        """Delete the rows whose ``column`` is below ``below`` (NULLs stay); how many."""
        physical, schema = await self._schema(table)
        ctype = self._column(schema, column, table)
        if ctype not in (ColumnType.INTEGER, ColumnType.REAL):
            raise ValueError(f"delete_where compares numbers; {column!r} is {ctype}")
        return await self._execute(f"DELETE FROM {quote(physical)} WHERE {quote(column)} < {self.placeholder}",
                                   [below])

    async def delete_in(self, table: str, column: str, values: Sequence[Any]) -> int:
        """Delete the rows whose ``column`` is one of ``values``; how many."""
        physical, schema = await self._schema(table)
        ctype = self._column(schema, column, table)
        encoded = [self._encode_value(ctype, v, column) for v in values]
        deleted = 0
        for start in range(0, len(encoded), _MAX_PARAMS):
            part = encoded[start:start + _MAX_PARAMS]
            marks = ", ".join([self.placeholder] * len(part))
            deleted += await self._execute(f"DELETE FROM {quote(physical)} WHERE {quote(column)} IN ({marks})", part)
        return deleted

    async def fetch_one(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        order_by: Sequence[tuple[str, Literal["asc", "desc"]]] | None = None,
    ) -> Row | None:
        """The first row fetch_all would return, or None."""
        rows = await self.fetch_all(table, where, order_by, limit=1)
        return rows[0] if rows else None

    async def update(self, table: str, values: Mapping[str, Any], where: Mapping[str, Any]) -> int:
        """Set `values` on the rows matching `where`; returns how many matched."""
        physical, schema = await self._schema(table)
        if not values:
            raise ValueError("update needs at least one value")
        sets, params = [], []
        for col, value in values.items():
            ctype = self._column(schema, col, table)
            sets.append(f"{quote(col)} = {self.placeholder}")
            params.append(self._encode_value(ctype, value, col))
        cond, where_params = self._where(schema, where, table)
        sql = f"UPDATE {quote(physical)} SET {', '.join(sets)}{cond}"
        return await self._execute(sql, params + where_params)

    async def delete(self, table: str, where: Mapping[str, Any]) -> int:
        """Delete the rows matching `where` (`{}` deletes all); returns how many."""
        if where is None:
            raise ValueError("delete needs a where mapping; pass {} to delete every row")
        physical, schema = await self._schema(table)
        cond, params = self._where(schema, where, table)
        return await self._execute(f"DELETE FROM {quote(physical)}{cond}", params)

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            await self._close()

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- helpers -----------------------------------------------------------

    def _table(self, name: str) -> str:
        check_identifier(name, "table name")
        return check_identifier(f"{self.namespace}_{name}" if self.namespace else name, "table name")

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the SQL store is closed")

    async def _schema(self, name: str) -> tuple[str, Schema]:
        table = self._table(name)
        self._check_open()
        schema = self._schemas.get(table)
        if schema is None:
            schema = await self._introspect(table)
            if not schema:
                raise StorageError(f"no table named {name!r}; call create_table first")
            self._schemas[table] = schema
        return table, schema

    @staticmethod
    def _column(schema: Schema, col: str, table: str) -> ColumnType | None:
        check_identifier(col, "column name")
        if col not in schema:
            raise ValueError(f"table {table!r} has no column {col!r}")
        return schema[col]

    def _encode_value(self, ctype: ColumnType | None, value: Any, col: str) -> Any:
        if value is None or ctype is None:
            return value
        if type(value) in SqlStore._binds_as_is.get(ctype, _NOTHING):  # every backend binds it as it is
            return value
        allowed = _PYTHON_TYPES.get(ctype)
        if allowed and (not isinstance(value, allowed) or (
            isinstance(value, bool) and ctype is not ColumnType.BOOLEAN
        )):
            raise TypeError(
                f"column {col!r} is {ctype.name}; got {type(value).__name__} {value!r:.60}"
            )
        if ctype is ColumnType.TIMESTAMP:
            value = to_utc(value)
        return self._encode(ctype, value)

    async def _insert_sql(self, table: str, row: Mapping[str, Any]) -> tuple[str, list[Any]]:
        physical, schema = await self._schema(table)
        if not row:
            raise ValueError("a row needs at least one column")
        params = [self._encode_value(self._column(schema, c, table), v, c) for c, v in row.items()]
        cols = ", ".join(quote(c) for c in row)
        marks = ", ".join([self.placeholder] * len(row))
        return f"INSERT INTO {quote(physical)} ({cols}) VALUES ({marks})", params

    def _order_sql(self, schema: Schema, order_by: Sequence[tuple[str, ...]], table: str) -> str:
        terms = []
        for item in order_by:
            col, direction, *nulls = item
            self._column(schema, col, table)
            if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
                raise ValueError(f"order direction must be 'asc' or 'desc', got {direction!r}")
            term = f"{quote(col)} {direction.upper()}"
            if nulls:
                if nulls[0] not in ("first", "last"):
                    raise ValueError(f"NULLs go 'first' or 'last', got {nulls[0]!r}")
                term += f" NULLS {nulls[0].upper()}"
            terms.append(term)
        return ", ".join(terms)

    def _json_predicate(self, element: str, predicate: JsonPredicate) -> tuple[str, list[Any]]:
        if isinstance(predicate, JsonTest):
            return self._json_test(element, predicate)
        parts, params = [], []
        for test in predicate.tests:
            sql, more = self._json_predicate(element, test)
            parts.append(f"({sql})")
            params += more
        if not parts:
            return ("1 = 1" if isinstance(predicate, JsonAll) else "1 = 0"), []
        return (" AND " if isinstance(predicate, JsonAll) else " OR ").join(parts), params

    def _json_test(self, element: str, test: JsonTest) -> tuple[str, list[Any]]:
        """SQL for one test, from the backend's type and value expressions of the path."""
        kind, value = self._json_at(element, test.path)
        types = self._json_types
        if test.op in ("present", "absent"):
            return f"{kind} IS {'NOT ' if test.op == 'present' else ''}NULL", []
        v = test.value
        if test.op in ("eq", "ne"):
            if v is None:
                sql, params = f"{kind} = '{types['null']}'", []
            elif isinstance(v, str):
                sql, params = (f"CASE WHEN {kind} = '{types['string']}' THEN {value['string']} = {self.placeholder} "
                               "ELSE FALSE END"), [v]
            elif isinstance(v, (bool, int, float)):
                sql, params = self._json_numeric(kind, value, "=", v)
            else:
                raise TypeError(f"JSON tests compare strings, numbers, booleans or None, not {type(v).__name__}")
            sql = f"COALESCE({sql}, FALSE)"
            return (f"NOT {sql}" if test.op == "ne" else sql), params
        if test.op not in ("gt", "lt"):
            raise ValueError(f"unknown JSON test {test.op!r}")
        op = ">" if test.op == "gt" else "<"
        if isinstance(v, str):
            sql, params = (f"CASE WHEN {kind} = '{types['string']}' THEN {value['string']}{self._text_order} {op} "
                           f"{self.placeholder} ELSE FALSE END"), [v]
        elif isinstance(v, (bool, int, float)):
            sql, params = self._json_numeric(kind, value, op, v)
        else:
            raise TypeError(f"gt and lt compare strings or numbers, not {type(v).__name__}")
        return f"COALESCE({sql}, FALSE)", params

    def _json_numeric(self, kind: str, value: dict[str, str], op: str, v: bool | float) -> tuple[str, list[Any]]:
        """A number or boolean ``v`` against a JSON number or boolean (booleans count as 0 and 1)."""
        number = float(v) if isinstance(v, float) else int(v)
        numbers = ", ".join(f"'{t}'" for t in self._json_types["number"])
        booleans = ", ".join(f"'{t}'" for t in self._json_types["boolean"])
        sql = (f"CASE WHEN {kind} IN ({numbers}) THEN {value['number']} {op} {self.placeholder} "
               f"WHEN {kind} IN ({booleans}) THEN {value['boolean']} {op} {self.placeholder} ELSE FALSE END")
        return sql, [number, number]

    def _where(
        self, schema: Schema, where: Mapping[str, Any] | None, table: str
    ) -> tuple[str, list[Any]]:
        if not where:
            return "", []
        terms, params = [], []
        for col, value in where.items():
            ctype = self._column(schema, col, table)
            if value is None:
                terms.append(f"{quote(col)} IS NULL")
            else:
                terms.append(f"{quote(col)} = {self.placeholder}")
                params.append(self._encode_value(ctype, value, col))
        return " WHERE " + " AND ".join(terms), params

    # -- backend hooks -----------------------------------------------------

    #: what the backend's JSON type function answers: "null", "string", and lists for "number", "boolean"
    _json_types: ClassVar[dict[str, Any]]
    #: appended to a text expression compared with gt / lt: byte (code point) order
    _text_order: ClassVar[str] = ""

    @abstractmethod
    def _json_elements(self, column: str) -> tuple[str, str]:
        """A FROM item giving one row per element of the JSON array ``column``, and the element's expression."""

    @abstractmethod
    def _json_at(self, element: str, path: tuple[int | str, ...]) -> tuple[str, dict[str, str]]:
        """The JSON type at ``path`` (NULL where absent) and its value as SQL "string", "number", "boolean"."""

    def _offset_only(self, offset: int) -> str:
        return f"OFFSET {offset}"

    @abstractmethod
    def _column_sql(self, ctype: ColumnType) -> str:
        """The column type to declare for `ctype`."""

    @abstractmethod
    def _encode(self, ctype: ColumnType, value: Any) -> Any:
        """A non-None Python value as the driver should bind it."""

    @abstractmethod
    def _decode(self, ctype: ColumnType | None, value: Any) -> Any:
        """A value read from the driver as the caller should see it."""

    @abstractmethod
    async def _create_table(self, table: str, create: str, adds: dict[str, str]) -> Schema:
        """Run `create`, then the `adds` for columns the table lacks; the schema."""

    async def _create_index(self, table: str, create: str) -> None:
        """Run the CREATE INDEX `create` on `table` (backends where replicas race override this)."""
        await self._execute(create, [])

    @abstractmethod
    async def _introspect(self, table: str) -> Schema:
        """The table's columns in order (empty when there is no such table)."""

    @abstractmethod
    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run a write; the number of rows it touched."""

    async def _execute_batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run the (sql, params) ``statements`` in one transaction (backends override this)."""
        for sql, params in statements:
            await self._execute(sql, params)

    @abstractmethod
    async def _close(self) -> None: ...
