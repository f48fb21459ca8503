"""Checks the contract block every migration starts with (ARCHITECTURE.md "Migration contract").

    # Migration Contract:
    #   type: reversible|forward_only|destructive
    #   rollback_plan: "alembic downgrade -1" | "forward_fix_only"
    #   verification_query: "SELECT 1;"
    #   backfill_plan: "n/a"
    #   owner: "team-name"
    #   ticket: "n/a"

Rules: the block comes before any code; all six fields are present, once, and non-empty;
`type` is one of the three kinds; reversible ⇒ rollback_plan "alembic downgrade -1" and a
`downgrade()` that does something; forward_only ⇒ rollback_plan "forward_fix_only"; destructive ⇒
a verification_query that reads a table (not a constant such as `SELECT 1;`); the
verification_query is one read-only SELECT.

    python -m infra.migration_contract [versions-dir]   # exit 1 listing every violation
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
HEADER = "# Migration Contract:"
FIELDS = ("type", "rollback_plan", "verification_query", "backfill_plan", "owner", "ticket")
TYPES = frozenset({"reversible", "forward_only", "destructive"})
DOWNGRADE_PLAN = "alembic downgrade -1"
FORWARD_FIX_PLAN = "forward_fix_only"

_FIELD_LINE = re.compile(r"^#\s+(?P<name>[A-Za-z_]+)\s*:\s*(?P<value>.*?)\s*$")
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_WORD = re.compile(r"[a-z_][a-z0-9_]*")
# Anything that writes, changes settings, locks, or runs code with side effects.
_FORBIDDEN_WORDS = frozenset(
    {
        "insert", "update", "delete", "merge", "upsert", "drop", "alter", "create",
        "truncate", "grant", "revoke", "copy", "call", "do", "execute", "prepare", "vacuum",
        "analyze", "cluster", "reindex", "refresh", "lock", "set", "reset", "begin", "commit",
        "rollback", "savepoint", "listen", "notify", "into", "for", "set_config", "nextval",
        "setval", "pg_sleep", "pg_terminate_backend", "pg_cancel_backend", "pg_advisory_lock",
        "pg_advisory_xact_lock", "pg_read_file", "pg_read_binary_file", "lo_import", "lo_export",
        "dblink", "dblink_exec",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Violation:
    path: Path
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path.name}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class ContractBlock:
    fields: dict[str, str]
    problems: tuple[tuple[str, str], ...]


def parse_contract(text: str) -> ContractBlock | None:
    """The contract block at the top of a migration, or None when none precedes the code."""
    lines = text.splitlines()
    start = None
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped == HEADER:
            start = number
            break
        if stripped and not stripped.startswith("#"):
            return None
    if start is None:
        return None
    fields: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for line in lines[start + 1 :]:
        match = _FIELD_LINE.match(line.strip())
        if not match:
            break
        name, value = match["name"], _unquote(match["value"])
        if name not in FIELDS:
            problems.append(("field-unknown", f"unknown field {name!r}"))
        elif name in fields:
            problems.append(("field-duplicate", f"{name} is given twice"))
        else:
            fields[name] = value
    return ContractBlock(fields, tuple(problems))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value.strip()


def read_only_select_problem(query: str) -> str | None:
    """Why `query` is not one read-only SELECT statement, or None when it is."""
    if "--" in query or "/*" in query:
        return "comments are not allowed"
    without_strings = _STRING_LITERAL.sub("''", query).strip()
    body = without_strings.rstrip(";").strip()
    if ";" in body:
        return "more than one statement"
    words = _WORD.findall(body.lower())
    if not words or words[0] != "select":
        return "does not start with SELECT"
    forbidden = sorted(set(words) & _FORBIDDEN_WORDS)
    if forbidden:
        return f"not read-only: {', '.join(forbidden)}"
    return None


def reads_a_table(query: str) -> bool:
    """A real verification reads something (has a FROM), unlike `SELECT 1;`."""
    return "from" in _WORD.findall(_STRING_LITERAL.sub("''", query).lower())


def _downgrade_does_something(source: str) -> bool | None:
    """None: no `downgrade()`; False: defined but only a docstring/pass/...; True otherwise."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            for statement in node.body:
                if isinstance(statement, ast.Pass):
                    continue
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    continue  # a docstring or a bare `...`
                return True
            return False
    return None


def check_source(path: Path, source: str) -> list[Violation]:
    """Every rule the migration at `path` (with this source) breaks."""
    block = parse_contract(source)
    if block is None:
        return [Violation(path, "contract-block", f"does not start with a {HEADER!r} block")]
    found = [Violation(path, rule, message) for rule, message in block.problems]
    fields = block.fields
    for name in FIELDS:
        if name not in fields:
            found.append(Violation(path, "field-missing", f"{name} is missing"))
        elif not fields[name]:
            found.append(Violation(path, "field-empty", f"{name} is empty"))
    kind = fields.get("type", "")
    plan = fields.get("rollback_plan", "")
    query = fields.get("verification_query", "")
    if kind and kind not in TYPES:
        found.append(Violation(path, "type", f"type {kind!r} is not one of {sorted(TYPES)}"))
    if plan and plan not in (DOWNGRADE_PLAN, FORWARD_FIX_PLAN):
        found.append(
            Violation(
                path,
                "rollback-plan",
                f"rollback_plan {plan!r} is neither {DOWNGRADE_PLAN!r} nor {FORWARD_FIX_PLAN!r}",
            )
        )
    if kind == "reversible":
        if plan != DOWNGRADE_PLAN:
            found.append(
                Violation(
                    path, "reversible-rollback-plan", f"must roll back with {DOWNGRADE_PLAN!r}"
                )
            )
        try:
            downgrade = _downgrade_does_something(source)
        except SyntaxError as exc:
            found.append(
                Violation(path, "syntax", f"cannot be parsed: {exc.msg} (line {exc.lineno})")
            )
        else:
            if not downgrade:
                what = "defines no downgrade()" if downgrade is None else "has an empty downgrade()"
                found.append(Violation(path, "reversible-downgrade", f"is reversible but {what}"))
    if kind == "forward_only" and plan != FORWARD_FIX_PLAN:
        found.append(
            Violation(path, "forward-only-rollback-plan", f"must declare {FORWARD_FIX_PLAN!r}")
        )
    if query:
        problem = read_only_select_problem(query)
        if problem:
            found.append(
                Violation(path, "verification-query", f"not a single read-only SELECT: {problem}")
            )
        if kind == "destructive" and not reads_a_table(query):
            found.append(
                Violation(
                    path,
                    "destructive-verification-query",
                    f"a destructive migration needs a real verification_query, not {query!r}",
                )
            )
    return found


def migration_files(versions_dir: Path = VERSIONS_DIR) -> list[Path]:
    return sorted(p for p in versions_dir.glob("*.py") if p.name != "__init__.py")


def check_directory(versions_dir: Path = VERSIONS_DIR) -> list[Violation]:
    found: list[Violation] = []
    for path in migration_files(versions_dir):
        found.extend(check_source(path, path.read_text(encoding="utf-8")))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    versions_dir = Path(args[0]) if args else VERSIONS_DIR
    violations = check_directory(versions_dir)
    for violation in violations:
        print(violation)
    count = len(migration_files(versions_dir))
    print(f"{count} migration(s) checked, {len(violations)} violation(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
