"""The streaming file parsers: CSV, NDJSON and JSON, plain and gzipped, per-item errors, fatal
errors, and memory that does not grow with the file."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.ingest import files
from hybrid.ingest.files import ParsedItem, iter_file_records

MiB = 1024 * 1024


def parse(data: bytes, fmt: Any, compression: Any = "none") -> list[ParsedItem]:
    if compression == "gzip":
        data = gzip.compress(data)
    return list(iter_file_records(io.BytesIO(data), fmt=fmt, compression=compression))


def record(key: str, **data: Any) -> dict[str, Any]:
    return {"key": key, "updated_at": "2026-11-20T08:00:00Z", "data": data}


def short_errors(items: list[ParsedItem]) -> None:
    for item in items:
        if item.error is not None:
            assert len(item.error) <= 200, item.error


# --- NDJSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_ndjson_records_and_line_numbers(compression: str) -> None:
    lines = [json.dumps(record("a", n=1)), "", "   ", json.dumps(record("b", n=2)), ""]
    items = parse("\n".join(lines).encode(), "ndjson", compression)
    assert items == [ParsedItem(1, record("a", n=1), None), ParsedItem(4, record("b", n=2), None)]


def test_ndjson_bad_lines_are_errors_and_parsing_goes_on() -> None:
    body = b"\n".join(
        [
            b'{"key": "a", "updated_at": "2026-01-01T00:00:00Z"}',
            b'{"key": "b", ',
            b"[1, 2]",
            b'{"key": "c", "n": NaN}',
            b'{"key": "\xff\xfe"}',
            b"42",
            b'{"key": "d", "updated_at": "2026-01-01T00:00:00Z"}\r',
        ]
    )
    items = parse(body, "ndjson")
    assert [(i.line, i.raw is not None) for i in items] == [
        (1, True),
        (2, False),
        (3, False),
        (4, False),
        (5, False),
        (6, False),
        (7, True),
    ]
    assert items[1].error is not None
    assert items[1].error.startswith("invalid JSON")
    assert items[2].error == "a record must be a JSON object"
    assert items[3].error is not None
    assert "NaN" in items[3].error
    assert items[4].error == "line is not valid UTF-8"
    assert not any(i.fatal for i in items)


def test_ndjson_error_never_echoes_the_line() -> None:
    secretish = "x" * 5000
    items = parse(f'{{"key": "{secretish}" oops}}\n'.encode(), "ndjson")
    assert items[0].error is not None
    assert secretish[:50] not in items[0].error
    short_errors(items)


def test_ndjson_line_over_one_mib_is_an_error_not_a_blow_up() -> None:
    big = b'{"key": "' + b"x" * (MiB + 10) + b'"}'
    body = b'{"key": "a"}\n' + big + b'\n{"key": "b"}\n'
    items = parse(body, "ndjson")
    assert [(i.line, i.error) for i in items] == [
        (1, None),
        (2, "line longer than 1 MiB"),
        (3, None),
    ]
    # Exactly at the limit is fine.
    payload = b'{"k": "' + b"y" * (MiB - 9) + b'"}'
    assert len(payload) == MiB
    assert parse(payload + b"\n", "ndjson")[0].raw is not None


def test_ndjson_bom_is_tolerated() -> None:
    items = parse(b'\xef\xbb\xbf{"key": "a"}\n', "ndjson")
    assert items == [ParsedItem(1, {"key": "a"}, None)]


def test_ndjson_holding_a_json_array_is_the_wrong_format() -> None:
    items = parse(b'[{"key": "a"}, {"key": "b"}]', "ndjson")
    assert len(items) == 1
    assert items[0].fatal


# --- gzip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "json"])
def test_truncated_gzip_ends_with_one_fatal_item(fmt: str) -> None:
    rows = [record(f"k{i}", n=i) for i in range(3000)]
    data = {
        "ndjson": "\n".join(json.dumps(r) for r in rows),
        "csv": "key,updated_at,n\n"
        + "\n".join(f"{r['key']},{r['updated_at']},{r['data']['n']}" for r in rows),
        "json": json.dumps(rows),
    }[fmt].encode()
    compressed = gzip.compress(data)
    items = list(
        iter_file_records(
            io.BytesIO(compressed[: len(compressed) // 2]), fmt=fmt, compression="gzip"
        )
    )
    assert items[-1].fatal
    assert items[-1].error == "the file is not valid gzip (corrupt or truncated)"
    good = items[:-1]
    assert good
    assert all(i.raw is not None for i in good)
    assert sum(i.fatal for i in items) == 1


def test_corrupt_gzip_is_fatal() -> None:
    compressed = bytearray(gzip.compress(b'{"key": "a"}\n' * 1000))
    compressed[40:60] = b"\x00" * 20
    items = list(iter_file_records(io.BytesIO(bytes(compressed)), fmt="ndjson", compression="gzip"))
    assert items[-1].fatal
    assert sum(i.fatal for i in items) == 1


def test_not_gzip_declared_gzip_is_fatal() -> None:
    items = parse(b'{"key": "a"}\n', "ndjson")
    assert items[0].raw == {"key": "a"}
    items = list(iter_file_records(io.BytesIO(b'{"key": "a"}\n'), fmt="ndjson", compression="gzip"))
    assert len(items) == 1
    assert items[0].fatal


def test_gzip_declared_uncompressed_is_fatal() -> None:
    items = list(
        iter_file_records(
            io.BytesIO(gzip.compress(b'{"key": "a"}\n')), fmt="ndjson", compression="none"
        )
    )
    assert len(items) == 1
    assert items[0].fatal
    assert items[0].error is not None
    assert "gzip" in items[0].error


def test_multi_member_gzip() -> None:
    data = gzip.compress(b'{"key": "a"}\n') + gzip.compress(b'{"key": "b"}\n')
    items = list(iter_file_records(io.BytesIO(data), fmt="ndjson", compression="gzip"))
    assert [i.raw for i in items] == [{"key": "a"}, {"key": "b"}]


# --- CSV -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_csv_rows(compression: str) -> None:
    body = (
        "\ufeffkey,updated_at,op,name,city\r\n"
        "c1,2026-11-20T08:00:00Z,,张三,Beijing\r\n"
        "c2,2026-11-20T08:01:00Z,delete,,ignored\r\n"
        '"c3",2026-11-20T08:02:00Z,upsert,"multi\nline, quoted","x ""y"""\r\n'
        "\r\n"
        "c4,2026-11-20T08:03:00Z,upsert,,Shanghai\r\n"
    ).encode()
    items = parse(body, "csv", compression)
    assert items == [
        ParsedItem(
            2,
            {
                "key": "c1",
                "updated_at": "2026-11-20T08:00:00Z",
                "data": {"name": "张三", "city": "Beijing"},
            },
            None,
        ),
        ParsedItem(
            3,
            {
                "key": "c2",
                "updated_at": "2026-11-20T08:01:00Z",
                "op": "delete",
            },
            None,
        ),
        ParsedItem(
            4,
            {
                "key": "c3",
                "updated_at": "2026-11-20T08:02:00Z",
                "op": "upsert",
                "data": {"name": "multi\nline, quoted", "city": 'x "y"'},
            },
            None,
        ),
        ParsedItem(
            7,
            {
                "key": "c4",
                "updated_at": "2026-11-20T08:03:00Z",
                "op": "upsert",
                "data": {"name": None, "city": "Shanghai"},
            },
            None,
        ),
    ]


def test_csv_without_op_column_and_empty_key() -> None:
    items = parse(b"updated_at,key,v\n2026-01-01T00:00:00Z,,1\n", "csv")
    assert items == [
        ParsedItem(2, {"key": None, "updated_at": "2026-01-01T00:00:00Z", "data": {"v": "1"}}, None)
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n\n",
        b"name,city\nx,y\n",
        b"key,name\nx,y\n",
        b"key,updated_at,key\n1,2,3\n",
        b"key,updated_at,\xff\n1,2,3\n",
    ],
)
def test_csv_unusable_header_is_fatal(body: bytes) -> None:
    items = parse(body, "csv")
    assert len(items) == 1
    assert items[0].fatal
    assert items[0].line == 1


def test_csv_bad_rows_are_errors_and_parsing_goes_on() -> None:
    long_cell = "z" * (MiB + 5)
    body = (
        b"key,updated_at,v\n"
        b"a,2026-01-01T00:00:00Z,1\n"
        b"b,2026-01-01T00:00:00Z\n"
        b"c,2026-01-01T00:00:00Z,\xff\xfe\n"
        + f"d,2026-01-01T00:00:00Z,{long_cell}\n".encode()
        + b"e,2026-01-01T00:00:00Z,5\n"
    )
    items = parse(body, "csv")
    assert [(i.line, i.raw["key"] if i.raw else i.error) for i in items] == [
        (2, "a"),
        (3, "row has 2 fields, the header has 3"),
        (4, "line is not valid UTF-8"),
        (5, "line longer than 1 MiB"),
        (6, "e"),
    ]
    short_errors(items)


def test_csv_record_spanning_over_a_mib_is_an_error() -> None:
    cell = ("q" * 999 + "\n") * 100  # 100,000 characters on 100 lines
    columns = [f"c{i}" for i in range(12)]
    row = ",".join(f'"{cell}"' for _ in columns)
    body = f"key,updated_at,{','.join(columns)}\na,t,{row}\nb,t{',' * 12}\n".encode()
    items = parse(body, "csv")
    assert items[0].error == "record longer than 1 MiB"
    assert items[0].raw is None
    # The rest of the oversized cell is not taken for records; the parser resynchronises on a
    # later line and keeps reporting per-line problems, never a memory blow-up.
    assert not any(i.fatal for i in items)


def test_csv_cell_over_the_csv_field_limit_is_an_error() -> None:
    body = f'key,updated_at,v\na,t,"{"w" * 200_000}"\nb,t,2\n'.encode()
    items = parse(body, "csv")
    assert items[0].error is not None
    assert items[0].error.startswith("a cell is longer than")
    assert items[-1].raw == {"key": "b", "updated_at": "t", "data": {"v": "2"}}


# --- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_json_array_and_records_object(compression: str, wrapped: bool) -> None:
    rows = [record(f"k{i}", n=i, name="张三") for i in range(50)]
    document: Any = rows
    if wrapped:
        document = {"meta": {"exported": "today", "n": [1, 2]}, "records": rows, "after": 1}
    items = parse(json.dumps(document, indent=2).encode(), "json", compression)
    assert items == [ParsedItem(i + 1, row, None) for i, row in enumerate(rows)]


def test_json_non_object_elements_are_errors() -> None:
    items = parse(b'[{"key": "a"}, 5, "x", null, [1], {"key": "b"}]', "json")
    assert [(i.line, i.raw, i.error is None) for i in items] == [
        (1, {"key": "a"}, True),
        (2, None, False),
        (3, None, False),
        (4, None, False),
        (5, None, False),
        (6, {"key": "b"}, True),
    ]


@pytest.mark.parametrize(
    ("body", "good"),
    [
        (b'[{"key": "a"}, {"key": "b"', 1),
        (b'[{"key": "a"}, {"key": "b"}', 2),
        (b'[{"key": "a"}, {"key": tru}, {"key": "c"}]', 1),
        (b'[{"key": "a"} {"key": "b"}]', 1),
        (b'[{"key": "a"},]', 1),
        (b'[{"key": "a"}] trailing', 1),
        (b'{"key": "a", "updated_at": "x"}', 0),
        (b'{"records": {"key": "a"}}', 0),
        (b'{"records": [{"key": "a"}], "records": []}', 1),
        (b'"just a string"', 0),
        (b"", 0),
        (b"   \n", 0),
        (b'[{"key": "a", "n": Infinity}]', 0),
        (b'[{"key": "\xff"}]', 0),
    ],
)
def test_json_structure_errors_are_fatal(body: bytes, good: int) -> None:
    items = parse(body, "json")
    assert items[-1].fatal
    assert [i.raw is not None for i in items[:-1]] == [True] * good
    short_errors(items)


def test_json_empty_array_and_object_without_records() -> None:
    assert parse(b"[]", "json") == []
    assert parse(b'{"records": []}', "json") == []
    items = parse(b"{}", "json")
    assert len(items) == 1
    assert items[0].fatal


def test_json_record_over_one_mib_is_fatal() -> None:
    big = json.dumps([{"key": "a"}, {"key": "b", "blob": "x" * (MiB + 10)}, {"key": "c"}])
    items = parse(big.encode(), "json")
    assert items[0].raw == {"key": "a"}
    assert items[-1].fatal
    assert len(items) == 2


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(
            st.text(min_size=1, max_size=6),
            st.one_of(
                st.integers(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=10),
                st.booleans(),
                st.none(),
            ),
            max_size=4,
        ),
        max_size=20,
    ),
    indent=st.sampled_from([None, 0, 1, 4]),
    chunk=st.integers(min_value=1, max_value=17),
)
def test_json_chunk_boundaries_never_change_the_result(
    rows: list[dict[str, Any]], indent: int | None, chunk: int
) -> None:
    """Tiny reads split numbers, strings and escapes anywhere; the values must not change."""
    body = json.dumps(rows, indent=indent, ensure_ascii=bool(chunk % 2)).encode()
    original = files.READ_CHUNK_BYTES
    files.READ_CHUNK_BYTES = chunk
    try:
        source = io.BufferedReader(_Trickle(body, chunk), buffer_size=max(chunk, 8))
        items = list(iter_file_records(source, fmt="json", compression="none"))  # type: ignore[arg-type]
    finally:
        files.READ_CHUNK_BYTES = original
    assert [i.raw for i in items] == rows


class _Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos : self._pos + size]
        self._pos += size
        return size


# --- bounded memory --------------------------------------------------------------------------


class _Generated(io.RawIOBase):
    """A large file produced on the fly, so that only the parser can hold it in memory."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        super().__init__()
        self._parts = parts
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            part = next(self._parts, None)
            if part is None:
                return 0
            self._pending = part
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _ndjson_parts(count: int) -> Iterator[bytes]:
    for i in range(count):
        yield json.dumps(record(f"k{i}", name="x" * 150, n=i)).encode() + b"\n"


def _json_parts(count: int) -> Iterator[bytes]:
    yield b'{"records": ['
    for i in range(count):
        yield (b"," if i else b"") + json.dumps(record(f"k{i}", name="x" * 150, n=i)).encode()
    yield b"]}"


def _csv_parts(count: int) -> Iterator[bytes]:
    yield b"key,updated_at,name,n\n"
    for i in range(count):
        yield f"k{i},2026-11-20T08:00:00Z,{'x' * 150},{i}\n".encode()


@pytest.mark.parametrize(
    ("fmt", "parts"), [("ndjson", _ndjson_parts), ("json", _json_parts), ("csv", _csv_parts)]
)
def test_memory_does_not_grow_with_the_file(fmt: Any, parts: Any) -> None:
    count = 30_000  # about 6 MB of input
    tracemalloc.start()
    try:
        stream = io.BufferedReader(_Generated(parts(count)), buffer_size=64 * 1024)
        seen = 0
        for item in iter_file_records(stream, fmt=fmt, compression="none"):  # type: ignore[arg-type]
            assert item.raw is not None
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_closing_the_iterator_early_leaves_the_stream_usable() -> None:
    stream = io.BytesIO(b"key,updated_at\na,b\nc,d\n")
    iterator = iter_file_records(stream, fmt="csv", compression="none")
    assert next(iterator).raw == {"key": "a", "updated_at": "b", "data": {}}
    iterator.close()
    assert not stream.closed


def test_unknown_format_or_compression_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="format"):
        list(iter_file_records(io.BytesIO(b""), fmt="xml", compression="none"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compression"):
        list(iter_file_records(io.BytesIO(b""), fmt="csv", compression="zip"))  # type: ignore[arg-type]
