"""The read-only SQL guard: one query in, the same query regenerated from its parse tree out.

`check_query` parses with sqlglot under an explicit dialect and accepts only one SELECT (with
UNION/INTERSECT/EXCEPT and CTEs), built from an allowlist of syntax and functions, reading
allowlisted tables. The SQL that reaches the database is regenerated from the tree, comments
dropped and every identifier quoted, so nothing the parser did not understand (a comment the
server would execute, a token the two read differently) can ride along.

Placeholders are each server's native form, bound by the driver and never interpolated:

- PostgreSQL: ``$1``, ``$2``, … numbered from 1 without gaps (the extended protocol binds them).
- MySQL: ``?`` (positional). PyMySQL formats ``%s`` on the client; `mysql_pyformat` turns a
  guarded MySQL query into that form.

The guard is one layer of several; the sources add a read-only transaction, a statement
timeout, one statement on the extended protocol, row/byte/time caps and the database role's
own privileges (see ``connector/GRANTS.md``).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, cast

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import ErrorLevel, SqlglotError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

SqlDialect = Literal["postgres", "mysql"]

DIALECTS: tuple[SqlDialect, ...] = ("postgres", "mysql")
DEFAULT_MAX_LENGTH = 20_000
MAX_PARAMS = 1_000
# Unqualified names resolve to this schema; the PostgreSQL source pins its search_path to it.
DEFAULT_SCHEMAS: dict[str, str | None] = {"postgres": "public", "mysql": None}
SYSTEM_SCHEMAS = frozenset(
    {"pg_catalog", "information_schema", "pg_toast", "mysql", "performance_schema", "sys"}
)

# sqlglot warns with the SQL text when it falls back to a raw command; the connector never
# logs SQL (literals may hold customer data), and such statements are rejected anyway.
logging.getLogger("sqlglot").setLevel(logging.CRITICAL)


class QueryRejectedError(Exception):
    """The query is not a plain read of allowlisted data; `reason` says why (no values)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GuardedQuery:
    """A query that passed the guard.

    `sql` is regenerated from the parse tree; `tables` are the tables it reads as normalised
    ``schema.table`` names (``table`` alone for MySQL without a default schema);
    `param_count` is how many bound parameters it takes.
    """

    sql: str
    tables: frozenset[str]
    param_count: int
    dialect: SqlDialect


# --- the allowlists ---------------------------------------------------------------------------

_SYNTAX: frozenset[type[exp.Expression]] = frozenset(
    {
        # query structure
        exp.Select,
        exp.Union,
        exp.Intersect,
        exp.Except,
        exp.Subquery,
        exp.From,
        exp.Join,
        exp.Lateral,
        exp.Values,
        exp.Where,
        exp.Group,
        exp.Having,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.Fetch,
        exp.LimitOptions,
        exp.Distinct,
        exp.With,
        exp.CTE,
        exp.TableAlias,
        exp.Alias,
        exp.Column,
        exp.Identifier,
        exp.Star,
        exp.Window,
        exp.WindowSpec,
        exp.Filter,
        exp.WithinGroup,
        # values
        exp.Literal,
        exp.Boolean,
        exp.Null,
        exp.RawString,
        exp.ByteString,
        exp.UnicodeString,
        exp.HexString,
        exp.BitString,
        exp.National,
        exp.Interval,
        exp.DataTypeParam,
        exp.Tuple,
        exp.Paren,
        exp.Bracket,
        exp.Slice,
        exp.JSONPath,
        exp.JSONPathKey,
        exp.JSONPathRoot,
        exp.JSONPathSubscript,
        # operators
        exp.Not,
        exp.Neg,
        exp.EQ,
        exp.NEQ,
        exp.NullSafeEQ,
        exp.NullSafeNEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
        exp.SimilarTo,
        exp.Escape,
        exp.Any,
        exp.All,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.IntDiv,
        exp.Mod,
        exp.DPipe,
        exp.BitwiseAnd,
        exp.BitwiseOr,
        exp.BitwiseXor,
        exp.BitwiseNot,
        exp.BitwiseLeftShift,
        exp.BitwiseRightShift,
    }
)

# Typed sqlglot functions: pure computations on their arguments, nothing that reads settings,
# files, sequences or other tables, sleeps, locks or allocates without bound (no REPEAT).
_FUNCTIONS: frozenset[type[exp.Expression]] = frozenset(
    {
        # logic and conversion
        exp.And,
        exp.Or,
        exp.Xor,
        exp.Case,
        exp.If,
        exp.Exists,
        exp.Coalesce,
        exp.Nullif,
        exp.Greatest,
        exp.Least,
        exp.Cast,
        exp.Array,
        # aggregates
        exp.Count,
        exp.Sum,
        exp.Avg,
        exp.Min,
        exp.Max,
        exp.ArrayAgg,
        exp.GroupConcat,
        exp.Stddev,
        exp.StddevPop,
        exp.StddevSamp,
        exp.Variance,
        exp.VariancePop,
        exp.LogicalAnd,
        exp.LogicalOr,
        exp.PercentileCont,
        exp.PercentileDisc,
        exp.JSONArrayAgg,
        exp.JSONObjectAgg,
        # window functions
        exp.RowNumber,
        exp.Rank,
        exp.DenseRank,
        exp.PercentRank,
        exp.CumeDist,
        exp.Ntile,
        exp.Lag,
        exp.Lead,
        exp.FirstValue,
        exp.LastValue,
        exp.NthValue,
        # numbers
        exp.Abs,
        exp.Ceil,
        exp.Floor,
        exp.Round,
        exp.Sqrt,
        exp.Cbrt,
        exp.Pow,
        exp.Exp,
        exp.Ln,
        exp.Log,
        exp.Sign,
        exp.Trunc,
        # strings
        exp.Lower,
        exp.Upper,
        exp.Length,
        exp.Substring,
        exp.SubstringIndex,
        exp.Trim,
        exp.Concat,
        exp.ConcatWs,
        exp.Replace,
        exp.Translate,
        exp.Left,
        exp.Right,
        exp.StrPosition,
        exp.SplitPart,
        exp.Initcap,
        exp.Reverse,
        exp.Pad,
        exp.Ascii,
        exp.Chr,
        exp.MD5,
        exp.RegexpLike,
        exp.RegexpILike,
        exp.RegexpReplace,
        # dates and times
        exp.CurrentDate,
        exp.CurrentTime,
        exp.CurrentTimestamp,
        exp.Extract,
        exp.DateTrunc,
        exp.TimestampTrunc,
        exp.DateAdd,
        exp.DateSub,
        exp.DateDiff,
        exp.TimestampAdd,
        exp.TimestampDiff,
        exp.TimeToStr,
        exp.StrToTime,
        exp.StrToDate,
        exp.TsOrDsToDate,
        exp.TsOrDsToTimestamp,
        exp.UnixToTime,
        exp.TimeToUnix,
        exp.ToChar,
        exp.ToNumber,
        exp.Year,
        exp.Quarter,
        exp.Month,
        exp.Week,
        exp.Day,
        exp.DayOfWeek,
        exp.DayOfMonth,
        exp.DayOfYear,
        # JSON and arrays
        exp.JSONExtract,
        exp.JSONExtractScalar,
        exp.JSONBExtract,
        exp.JSONBExtractScalar,
        exp.JSONBContains,
        exp.JSONBContainsTopKey,
        exp.ArrayContainsAll,
        exp.ArrayContains,
        exp.ArraySize,
        # set-returning (in FROM)
        exp.Unnest,
        exp.GenerateSeries,
        exp.ExplodingGenerateSeries,
    }
)

# Functions sqlglot does not type (it parses them as Anonymous), by exact lowercase name.
_COMMON_NAMES = frozenset({"char_length", "octet_length", "bit_length", "ltrim", "rtrim", "lpad"})
_ANONYMOUS: dict[str, frozenset[str]] = {
    "postgres": _COMMON_NAMES
    | {
        "age",
        "array_length",
        "array_position",
        "array_to_string",
        "btrim",
        "cardinality",
        "date_part",
        "div",
        "json_agg",
        "json_array_elements",
        "json_array_elements_text",
        "json_array_length",
        "json_build_array",
        "json_build_object",
        "json_each",
        "json_each_text",
        "json_typeof",
        "jsonb_agg",
        "jsonb_array_elements",
        "jsonb_array_elements_text",
        "jsonb_array_length",
        "jsonb_build_array",
        "jsonb_build_object",
        "jsonb_each",
        "jsonb_each_text",
        "jsonb_object_keys",
        "jsonb_typeof",
        "justify_days",
        "justify_hours",
        "justify_interval",
        "make_date",
        "make_timestamp",
        "regexp_match",
        "regexp_split_to_array",
        "rpad",
        "strpos",
        "string_to_array",
        "to_date",
        "to_json",
        "to_jsonb",
        "to_timestamp",
        "width_bucket",
    },
    "mysql": _COMMON_NAMES
    | {
        "convert_tz",
        "curtime",
        "date",
        "dayname",
        "field",
        "from_unixtime",
        "hour",
        "instr",
        "json_contains",
        "json_length",
        "json_unquote",
        "last_day",
        "minute",
        "monthname",
        "now",
        "rpad",
        "second",
        "str_to_date",
        "time",
        "timediff",
        "truncate",
        "unix_timestamp",
        "weekday",
    },
}

_DATA_TYPES = frozenset(
    {
        exp.DataType.Type.ARRAY,
        exp.DataType.Type.BIGINT,
        exp.DataType.Type.BINARY,
        exp.DataType.Type.BOOLEAN,
        exp.DataType.Type.BPCHAR,
        exp.DataType.Type.CHAR,
        exp.DataType.Type.DATE,
        exp.DataType.Type.DATETIME,
        exp.DataType.Type.DECIMAL,
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.FLOAT,
        exp.DataType.Type.INT,
        exp.DataType.Type.INTERVAL,
        exp.DataType.Type.JSON,
        exp.DataType.Type.JSONB,
        exp.DataType.Type.MEDIUMINT,
        exp.DataType.Type.NCHAR,
        exp.DataType.Type.NVARCHAR,
        exp.DataType.Type.SMALLINT,
        exp.DataType.Type.TEXT,
        exp.DataType.Type.TIME,
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPTZ,
        exp.DataType.Type.TIMETZ,
        exp.DataType.Type.TINYINT,
        exp.DataType.Type.UBIGINT,
        exp.DataType.Type.UINT,
        exp.DataType.Type.UUID,
        exp.DataType.Type.VARBINARY,
        exp.DataType.Type.VARCHAR,
    }
)

# A Var is emitted verbatim, so it may only be a date/time unit word under these nodes.
_VAR_PARENTS: frozenset[type[exp.Expression]] = frozenset(
    {
        exp.Extract,
        exp.Interval,
        exp.DateTrunc,
        exp.TimestampTrunc,
        exp.DateAdd,
        exp.DateSub,
        exp.DateDiff,
        exp.TimestampAdd,
        exp.TimestampDiff,
    }
)
_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)
_UNIT_WORD = re.compile(r"[A-Za-z_]{1,32}")
_FUNCTION_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_MYSQL_EXECUTABLE_COMMENTS = ("/*!", "/*+")
_ALLOWED_CONTROL = frozenset("\t\n\r")
_SAFE_DESCRIPTION = re.compile(r"[A-Za-z ,:'/()_-]{1,80}")
_REJECTED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


# --- the guard ----------------------------------------------------------------------------------


def _refuse_json_arrows(sql: str) -> None:
    """MariaDB has no ``->``/``->>`` operators (MySQL has): a query the guard passed must run
    on both, so the portable JSON_EXTRACT / JSON_UNQUOTE spelling is asked for instead."""
    from sqlglot.dialects.mysql import MySQL

    arrows = {TokenType.ARROW, TokenType.DARROW}
    if any(token.token_type in arrows for token in MySQL().tokenize(sql)):
        raise QueryRejectedError(
            "JSON arrow operators (->, ->>) do not run on MariaDB; "
            "use JSON_EXTRACT(col, path) or JSON_UNQUOTE(JSON_EXTRACT(col, path))"
        )


def check_query(
    sql: str,
    *,
    dialect: SqlDialect,
    allowed_tables: Collection[str] | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    default_schema: str | None = None,
) -> GuardedQuery:
    """Accept one read-only query, or raise QueryRejectedError.

    `allowed_tables` (``table`` or ``schema.table``, quoted where the dialect needs it)
    restricts the tables the query may read; None allows any non-system table. Unqualified
    names on either side belong to `default_schema` (PostgreSQL: ``public`` unless given).
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unsupported dialect {dialect!r}")
    schema = default_schema if default_schema is not None else DEFAULT_SCHEMAS[dialect]
    _check_text(sql, dialect, max_length)
    try:
        tree = _parse_one(sql, dialect)
        tables, param_count = _Inspection(dialect, schema).run(tree)
        regenerated = _generate(tree, dialect)
        if _generate(_parse_one(regenerated, dialect), dialect) != regenerated:
            raise QueryRejectedError("the query does not survive regeneration unchanged")
        if dialect == "mysql":
            _refuse_json_arrows(regenerated)
    except RecursionError:
        raise QueryRejectedError("the query is nested too deeply") from None
    if allowed_tables is not None:
        allowed = _normalised_allowlist(frozenset(allowed_tables), dialect, schema)
        outside = sorted(tables - allowed)
        if outside:
            raise QueryRejectedError(f"table not allowed: {', '.join(outside)}")
    return GuardedQuery(sql=regenerated, tables=tables, param_count=param_count, dialect=dialect)


def normalise_table_name(
    name: str, *, dialect: SqlDialect, default_schema: str | None = None
) -> str:
    """The form `GuardedQuery.tables` uses for a configured table name."""
    schema = default_schema if default_schema is not None else DEFAULT_SCHEMAS[dialect]
    return next(iter(_normalised_allowlist(frozenset({name}), dialect, schema)))


def mysql_pyformat(sql: str) -> str:
    """A guarded MySQL query in PyMySQL's format: each ``?`` becomes ``%s``, ``%`` doubles.

    Execute it with ``cursor.execute(sql, tuple(params))`` (a tuple even when empty, so the
    doubled ``%`` are always undone).
    """
    out: list[str] = []
    position = 0
    for token in sqlglot.Dialect.get_or_raise("mysql").tokenize(sql):
        out.append(sql[position : token.start].replace("%", "%%"))
        raw = sql[token.start : token.end + 1]
        out.append("%s" if token.token_type == TokenType.PLACEHOLDER else raw.replace("%", "%%"))
        position = token.end + 1
    out.append(sql[position:].replace("%", "%%"))
    return "".join(out)


def _check_text(sql: str, dialect: SqlDialect, max_length: int) -> None:
    if not isinstance(sql, str):
        raise QueryRejectedError("the query must be a string")
    if len(sql) > max_length:
        raise QueryRejectedError(f"the query is longer than {max_length} characters")
    if not sql.strip():
        raise QueryRejectedError("the query is empty")
    for char in sql:
        if char in _ALLOWED_CONTROL or (char.isascii() and char.isprintable()):
            continue
        if unicodedata.category(char) in _REJECTED_CATEGORIES:
            raise QueryRejectedError(
                f"the query contains a control or invisible character (U+{ord(char):04X})"
            )
    if dialect == "mysql":
        for marker in _MYSQL_EXECUTABLE_COMMENTS:
            if marker in sql:
                raise QueryRejectedError(
                    f"MySQL executable comments and optimizer hints ({marker} … */) are not allowed"
                )


def _parse_one(sql: str, dialect: SqlDialect) -> exp.Expression:
    try:
        trees = sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise QueryRejectedError(f"the query does not parse: {_parse_error_reason(exc)}") from None
    statements = [tree for tree in trees if tree is not None]
    if len(statements) != 1:
        raise QueryRejectedError(f"exactly one statement is allowed, found {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _ROOTS):
        raise QueryRejectedError(f"only SELECT queries are allowed, not {_describe(tree)}")
    return normalize_identifiers(tree, dialect=dialect)


def _parse_error_reason(exc: SqlglotError) -> str:
    """sqlglot's description and position, never its excerpt of the SQL text (nor the token
    some descriptions end with: it may be a literal holding data)."""
    errors = getattr(exc, "errors", None) or []
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        description = re.split(r" but got | for <class |\. Line ", str(first.get("description")))[0]
        if not _SAFE_DESCRIPTION.fullmatch(description):
            description = "syntax error"
        return f"{description} (line {first.get('line')}, column {first.get('col')})"
    if isinstance(exc, TokenError):
        return "unterminated string, comment or identifier, or an unknown character"
    return "syntax error"


def _generate(tree: exp.Expression, dialect: SqlDialect) -> str:
    try:
        return tree.sql(
            dialect=dialect,
            identify=True,
            comments=False,
            unsupported_level=ErrorLevel.RAISE,
        )
    except SqlglotError as exc:
        raise QueryRejectedError(f"the query cannot be regenerated: {type(exc).__name__}") from None


_NODE_NAMES: dict[type[exp.Expression], str] = {
    exp.Into: "SELECT … INTO",
    exp.Lock: "a locking clause (FOR UPDATE/SHARE)",
    exp.Dot: "a qualified function call or field access",
    exp.PropertyEQ: "an assignment",
    exp.SessionParameter: "a system variable",
    exp.TruncateTable: "TRUNCATE",
}


def _describe(node: Any) -> str:
    if isinstance(node, exp.Command):
        return f"{str(node.this).upper()} commands"
    return _NODE_NAMES.get(type(node)) or node.key.upper()


@lru_cache(maxsize=64)
def _normalised_allowlist(
    names: frozenset[str], dialect: SqlDialect, schema: str | None
) -> frozenset[str]:
    normalised = set()
    for name in names:
        try:
            table = sqlglot.parse_one(name, into=exp.Table, read=dialect)
        except SqlglotError:
            raise ValueError(f"not a table name: {name!r}") from None
        if (
            not isinstance(table, exp.Table)
            or not isinstance(table.this, exp.Identifier)
            or table.args.get("catalog") is not None
            or table.args.get("alias") is not None
        ):
            raise ValueError(f"not a table name: {name!r}")
        table = normalize_identifiers(table, dialect=dialect)
        normalised.add(_qualified(table.db or schema, table.name))
    return frozenset(normalised)


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


class _Inspection:
    """One walk over the tree: allowlists, placeholders, and the tables read (CTEs aside)."""

    def __init__(self, dialect: SqlDialect, default_schema: str | None) -> None:
        self.dialect = dialect
        self.default_schema = default_schema
        self.tables: set[str] = set()
        self.numbered: set[int] = set()
        self.positional = 0

    def run(self, tree: exp.Expression) -> tuple[frozenset[str], int]:
        self._visit(tree, frozenset())
        if self.dialect == "postgres":
            count = max(self.numbered, default=0)
            if self.numbered != set(range(1, count + 1)):
                raise QueryRejectedError("placeholders must be numbered $1, $2, … without gaps")
        else:
            count = self.positional
        if count > MAX_PARAMS:
            raise QueryRejectedError(f"more than {MAX_PARAMS} placeholders")
        return frozenset(self.tables), count

    def _visit(self, node: exp.Expression, ctes: frozenset[str]) -> None:
        self._check_node(node)
        with_ = next((arg for arg in node.args.values() if isinstance(arg, exp.With)), None)
        if with_ is not None:
            ctes = self._visit_with(with_, ctes)
        if isinstance(node, exp.Table):
            self._visit_table(node, ctes)
        for child in node.iter_expressions():
            if child is not with_:
                self._visit(child, ctes)

    def _visit_with(self, with_: exp.With, outer: frozenset[str]) -> frozenset[str]:
        """CTE names visible to each CTE and to the query: a plain WITH sees the earlier ones,
        WITH RECURSIVE all of them (PostgreSQL's rules)."""
        self._check_node(with_)
        names = [cte.alias for cte in with_.expressions]
        recursive = bool(with_.args.get("recursive"))
        for index, cte in enumerate(with_.expressions):
            visible = outer | frozenset(names if recursive else names[:index])
            self._visit(cte, visible)
        return outer | frozenset(names)

    def _visit_table(self, table: exp.Table, ctes: frozenset[str]) -> None:
        if table.args.get("catalog") is not None:
            raise QueryRejectedError("three-part table names are not allowed")
        if isinstance(table.this, exp.Func):
            if table.args.get("db") is not None:
                raise QueryRejectedError("schema-qualified functions are not allowed")
            return
        if not isinstance(table.this, exp.Identifier):
            raise QueryRejectedError(f"{_describe(table.this)} is not allowed as a table")
        name, schema = table.name, table.db or None
        if schema is None and name in ctes:
            return
        for part in (name, schema):
            if part is not None and ("." in part or not part):
                raise QueryRejectedError("table names containing '.' are not allowed")
        resolved = schema or self.default_schema
        if (resolved or "").lower() in SYSTEM_SCHEMAS or (
            self.dialect == "postgres"
            and (name.lower().startswith("pg_") or (resolved or "").lower().startswith("pg_"))
        ):
            raise QueryRejectedError(f"system catalog not allowed: {_qualified(schema, name)}")
        self.tables.add(_qualified(resolved, name))

    def _check_node(self, node: exp.Expression) -> None:
        kind = type(node)
        if kind in _SYNTAX or kind in _FUNCTIONS or kind is exp.Table:
            if kind is exp.Literal and not node.is_string and not _NUMBER.fullmatch(node.name):
                raise QueryRejectedError("malformed numeric literal")
            return
        if kind is exp.Anonymous:
            self._check_function_name(cast(exp.Anonymous, node))
        elif kind is exp.DataType:
            if node.this not in _DATA_TYPES:
                raise QueryRejectedError(f"type not allowed: {node.this.name}")
        elif kind is exp.Parameter:
            self._check_parameter(cast(exp.Parameter, node))
        elif kind is exp.Placeholder:
            self._check_placeholder(cast(exp.Placeholder, node))
        elif kind is exp.Var:
            if type(node.parent) not in _VAR_PARENTS or not _UNIT_WORD.fullmatch(node.name):
                raise QueryRejectedError("keyword not allowed here")
        elif isinstance(node, exp.Func):
            raise QueryRejectedError(f"function not allowed: {node.sql_name().lower()}")
        else:
            raise QueryRejectedError(f"{_describe(node)} is not allowed")

    def _check_function_name(self, node: exp.Anonymous) -> None:
        raw = node.name
        name = raw.lower()
        if not raw.isascii() or not _FUNCTION_NAME.fullmatch(name):
            raise QueryRejectedError("function names must be plain ASCII identifiers")
        if name not in _ANONYMOUS[self.dialect]:
            raise QueryRejectedError(f"function not allowed: {name}")

    def _check_parameter(self, node: exp.Parameter) -> None:
        value = node.this
        if (
            self.dialect == "postgres"
            and isinstance(value, exp.Literal)
            and not value.is_string
            and value.name.isdigit()
            and 1 <= int(value.name) <= MAX_PARAMS
        ):
            self.numbered.add(int(value.name))
            return
        if self.dialect == "mysql":
            raise QueryRejectedError("user variables (@name) are not allowed")
        raise QueryRejectedError("placeholders must be numbered $1, $2, …")

    def _check_placeholder(self, node: exp.Placeholder) -> None:
        if self.dialect == "mysql" and not node.this:
            self.positional += 1
            return
        expected = "?" if self.dialect == "mysql" else "$1, $2, …"
        raise QueryRejectedError(f"placeholders must be written {expected}")
