"""Streaming parsers for uploaded files: CSV, NDJSON and JSON, optionally gzip-compressed.

Memory stays bounded whatever the file size: input is read in small chunks, one record at a time,
and no line or record may exceed 1 MiB. Each record comes out as a `ParsedItem`: a raw dict for
`hybrid.ingest.models.validate_records`, or a short error for that item, after which parsing goes
on. A file that cannot be read further (corrupt or truncated gzip, malformed JSON structure, a
CSV without a usable header, the wrong format) ends with one final item marked `fatal`.

A CSV row becomes `{"key", "updated_at", "op"?, "data": {other column: cell or None}}`: cells
stay strings, an empty cell is None, an empty `op` means the default, and a delete has no `data`
(the cells of its row are ignored). Columns with an empty header name are ignored.

`ParsedItem.line` is the physical line where the item starts (NDJSON, CSV: the header is line 1)
or, for JSON, the 1-based position of the record in its array.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, NoReturn

Format = Literal["csv", "ndjson", "json"]
Compression = Literal["none", "gzip"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson", "json")
COMPRESSIONS: tuple[Compression, ...] = ("none", "gzip")

MAX_LINE_BYTES = 1024 * 1024
MAX_RECORD_CHARS = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
REQUIRED_CSV_COLUMNS = ("key", "updated_at")
CSV_OP_COLUMN = "op"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = codecs.BOM_UTF8
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)

_Source = io.BufferedReader | gzip.GzipFile


@dataclass(frozen=True)
class ParsedItem:
    """One record of a file (`raw`), or why that item, or the rest of the file, is unusable."""

    line: int
    raw: dict[str, Any] | None
    error: str | None
    fatal: bool = False


class _Unreadable(Exception):
    """The rest of the file cannot be parsed; the message is safe to show."""


class _BadLine(Exception):
    """One CSV line is unusable; parsing resumes after it."""


class _Cursor:
    """Where the parser is, for the line number of a final error."""

    def __init__(self) -> None:
        self.line = 1


def iter_file_records(
    stream: BinaryIO, *, fmt: Format, compression: Compression
) -> Generator[ParsedItem, None, None]:
    """The items of the file, read incrementally from `stream` (which is left open)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown file format: {fmt!r}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression: {compression!r}")
    cursor = _Cursor()
    try:
        source: _Source
        if compression == "gzip":
            source = gzip.GzipFile(fileobj=stream, mode="rb")
        else:
            source = _buffered(stream)
            if source.peek(2)[:2] == _GZIP_MAGIC:
                raise _Unreadable("the file is gzip-compressed but declared uncompressed")
        if fmt == "ndjson":
            yield from _iter_ndjson(source, cursor)
        elif fmt == "csv":
            yield from _iter_csv(source, cursor)
        else:
            yield from _iter_json(source, cursor)
    except _Unreadable as exc:
        yield ParsedItem(cursor.line, None, str(exc), fatal=True)
    except _GZIP_ERRORS:
        yield ParsedItem(
            cursor.line, None, "the file is not valid gzip (corrupt or truncated)", fatal=True
        )


def _buffered(stream: BinaryIO) -> io.BufferedReader:
    if isinstance(stream, io.BufferedReader):
        return stream
    return io.BufferedReader(_RawReader(stream), buffer_size=READ_CHUNK_BYTES)


class _RawReader(io.RawIOBase):
    """Any readable binary object as a raw stream; closing it leaves the source open."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        count = len(data)
        view[:count] = data
        return count


def _short(message: str, limit: int = 160) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _json_error(exc: Exception) -> str:
    """A JSON error without the input it was reading."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return _short(f"invalid JSON: {exc}")


# --- NDJSON ----------------------------------------------------------------------------------


def _iter_ndjson(source: _Source, cursor: _Cursor) -> Iterator[ParsedItem]:
    line_no = 0
    seen_content = False
    while True:
        cursor.line = line_no + 1
        line = source.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        line_no += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            _skip_rest_of_line(source)
            yield ParsedItem(line_no, None, "line longer than 1 MiB")
            continue
        if line_no == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        stripped = line.strip()
        if not stripped:
            continue
        if not seen_content and stripped[:1] == b"[":
            raise _Unreadable("the file holds a JSON array, not one JSON object per line")
        seen_content = True
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError:
            yield ParsedItem(line_no, None, "line is not valid UTF-8")
            continue
        try:
            value = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            yield ParsedItem(line_no, None, _json_error(exc))
            continue
        if not isinstance(value, dict):
            yield ParsedItem(line_no, None, "a record must be a JSON object")
            continue
        yield ParsedItem(line_no, value, None)


def _skip_rest_of_line(source: _Source) -> None:
    while True:
        part = source.readline(READ_CHUNK_BYTES)
        if not part or part.endswith(b"\n"):
            return


# --- CSV -------------------------------------------------------------------------------------


class _Lines:
    """Physical lines of the text, each at most 1 MiB; a record (several lines when a quoted
    cell holds newlines) at most MAX_RECORD_CHARS. Invalid UTF-8 was decoded with
    surrogateescape and is reported per line."""

    def __init__(self, text: io.TextIOWrapper[Any]) -> None:
        self._text = text
        self.line_no = 0
        self.record_chars = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        self.line_no += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(("\n", "\r")):
            while True:
                part = self._text.readline(READ_CHUNK_BYTES)
                if not part or part.endswith(("\n", "\r")):
                    break
            raise _BadLine("line longer than 1 MiB")
        self.record_chars += len(line)
        if self.record_chars > MAX_RECORD_CHARS:
            raise _BadLine("record longer than 1 MiB")
        if not line.isascii():
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                raise _BadLine("line is not valid UTF-8") from None
        return line


def _iter_csv(source: _Source, cursor: _Cursor) -> Iterator[ParsedItem]:
    text = io.TextIOWrapper(
        source,
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )
    try:
        yield from _csv_rows(text, cursor)
    finally:
        # Detach so that collecting the wrapper does not close the caller's stream.
        text.detach()


def _csv_rows(text: io.TextIOWrapper[Any], cursor: _Cursor) -> Iterator[ParsedItem]:
    lines = _Lines(text)
    reader = csv.reader(lines)
    columns: _CsvColumns | None = None
    while True:
        start = lines.line_no + 1
        cursor.line = start
        lines.record_chars = 0
        try:
            row = next(reader)
        except StopIteration:
            break
        except (_BadLine, csv.Error) as exc:
            if columns is None:
                raise _Unreadable(f"the CSV header is unusable: {_csv_error(exc)}") from None
            yield ParsedItem(lines.line_no, None, _csv_error(exc))
            reader = csv.reader(lines)  # start clean after the bad line
            continue
        if not row or all(not cell.strip() for cell in row):
            continue
        if columns is None:
            columns = _CsvColumns.from_header(row)
            continue
        yield columns.item(start, row)
    if columns is None:
        cursor.line = 1
        raise _Unreadable("the CSV file has no header row")


def _csv_error(exc: Exception) -> str:
    if isinstance(exc, csv.Error) and "field limit" in str(exc):
        return f"a cell is longer than {csv.field_size_limit()} characters"
    return _short(str(exc))


class _CsvColumns:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.key = names.index("key")
        self.updated_at = names.index("updated_at")
        self.op = names.index(CSV_OP_COLUMN) if CSV_OP_COLUMN in names else None
        reserved = {self.key, self.updated_at, self.op}
        self.data = [(i, name) for i, name in enumerate(names) if i not in reserved and name]

    @classmethod
    def from_header(cls, row: list[str]) -> _CsvColumns:
        names = [cell.strip() for cell in row]
        missing = [name for name in REQUIRED_CSV_COLUMNS if name not in names]
        if missing:
            raise _Unreadable(
                "the CSV header must name the columns key and updated_at "
                f"(missing: {', '.join(missing)})"
            )
        named = [name for name in names if name]
        if len(set(named)) != len(named):
            raise _Unreadable("the CSV header names a column twice")
        return cls(names)

    def item(self, line: int, row: list[str]) -> ParsedItem:
        if len(row) != len(self.names):
            return ParsedItem(
                line, None, f"row has {len(row)} fields, the header has {len(self.names)}"
            )
        raw: dict[str, Any] = {
            "key": row[self.key].strip() or None,
            "updated_at": row[self.updated_at].strip() or None,
        }
        op = row[self.op].strip() if self.op is not None else ""
        if op:
            raw["op"] = op
        if op != "delete":
            # A delete carries no data; the cells of its row are necessarily there, and ignored.
            raw["data"] = {name: (row[i] if row[i] != "" else None) for i, name in self.data}
        return ParsedItem(line, raw, None)


# --- JSON ------------------------------------------------------------------------------------


class _JsonReader:
    """JSON values decoded one at a time from a byte stream, with a bounded buffer."""

    def __init__(self, source: _Source) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self._buffer = ""
        self._pos = 0
        self._eof = False

    def _fill(self, size: int = 0) -> bool:
        """Append at least one more chunk of text; False once the input is exhausted."""
        while not self._eof:
            data = self._source.read(size or READ_CHUNK_BYTES)
            try:
                text = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError:
                raise _Unreadable("the file is not valid UTF-8") from None
            if not data:
                self._eof = True
            self._buffer = self._buffer[self._pos :] + text
            self._pos = 0
            if text:
                return True
        return False

    def peek(self) -> str | None:
        """The next character that is not whitespace, not consumed; None at the end."""
        while True:
            match = _WHITESPACE.match(self._buffer, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return None

    def take(self) -> str | None:
        char = self.peek()
        if char is not None:
            self._pos += 1
        return char

    def value(self, what: str) -> Any:
        """Decode the next value; `what` names it in errors ("record 12")."""
        if self.peek() is None:
            raise _Unreadable(f"the JSON document ends before {what}")
        while True:
            pending = len(self._buffer) - self._pos
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except (ValueError, RecursionError) as exc:
                if self._eof or pending > MAX_RECORD_CHARS:
                    detail = _json_error(exc).removeprefix("invalid JSON: ")
                    limit = "" if self._eof else " (or it is larger than 1 MiB)"
                    raise _Unreadable(f"invalid JSON in {what}{limit}: {detail}") from None
                self._fill(max(READ_CHUNK_BYTES, pending))
                continue
            if end >= len(self._buffer) and not self._eof:
                # A number at the end of the buffer may go on in the next chunk.
                self._fill()
                continue
            if end - self._pos > MAX_RECORD_CHARS:
                raise _Unreadable(f"{what} is larger than 1 MiB")
            self._pos = end
            return value


def _iter_json(source: _Source, cursor: _Cursor) -> Iterator[ParsedItem]:
    reader = _JsonReader(source)
    first = reader.take()
    if first == "[":
        yield from _json_array(reader, cursor)
    elif first == "{":
        yield from _json_records_object(reader, cursor)
    elif first is None:
        raise _Unreadable("the file is empty")
    else:
        raise _Unreadable(
            "a JSON file must hold an array of records or an object with a records array"
        )
    if reader.peek() is not None:
        raise _Unreadable("unexpected data after the JSON document")


def _json_array(reader: _JsonReader, cursor: _Cursor) -> Iterator[ParsedItem]:
    """The records of an array whose `[` was just read, up to and including its `]`."""
    if reader.peek() == "]":
        reader.take()
        return
    index = 0
    while True:
        index += 1
        cursor.line = index
        value = reader.value(f"record {index}")
        if isinstance(value, dict):
            yield ParsedItem(index, value, None)
        else:
            yield ParsedItem(index, None, "a record must be a JSON object")
        cursor.line = index + 1
        separator = reader.take()
        if separator == ",":
            continue
        if separator == "]":
            return
        if separator is None:
            raise _Unreadable(f"the JSON document ends after record {index}")
        raise _Unreadable(f"expected ',' or ']' after record {index}")


def _json_records_object(reader: _JsonReader, cursor: _Cursor) -> Iterator[ParsedItem]:
    """An object whose `{` was just read: stream its `records` array, skip other members."""
    found = False
    if reader.peek() == "}":
        reader.take()
    else:
        while True:
            name = reader.value("a member name")
            if not isinstance(name, str):
                raise _Unreadable("invalid JSON: a member name must be a string")
            if reader.take() != ":":
                raise _Unreadable("invalid JSON: expected ':' after a member name")
            if name == "records":
                if found:
                    raise _Unreadable("the JSON object has two records members")
                if reader.take() != "[":
                    raise _Unreadable("records must be a JSON array")
                found = True
                yield from _json_array(reader, cursor)
            else:
                reader.value(f"the member {_short(name, 40)!r}")
            separator = reader.take()
            if separator == "}":
                break
            if separator != ",":
                raise _Unreadable("invalid JSON: expected ',' or '}' in the top-level object")
    if not found:
        raise _Unreadable("the JSON object has no records array")
