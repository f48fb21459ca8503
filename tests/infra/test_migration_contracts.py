"""Every migration carries a valid contract block; the checker itself fails bad samples."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from infra.migration_contract import (
    VERSIONS_DIR,
    check_directory,
    check_source,
    main,
    migration_files,
    parse_contract,
    read_only_select_problem,
)

GOOD_REVERSIBLE = '''
# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM widgets;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "n/a"
"""Add widgets."""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("CREATE TABLE widgets (id text PRIMARY KEY)")


def downgrade() -> None:
    op.execute("DROP TABLE widgets")
'''


def _contract(**overrides: str | None) -> str:
    fields = {
        "type": "reversible",
        "rollback_plan": '"alembic downgrade -1"',
        "verification_query": '"SELECT count(*) FROM widgets;"',
        "backfill_plan": '"n/a"',
        "owner": '"platform"',
        "ticket": '"n/a"',
    }
    fields.update(overrides)
    lines = ["# Migration Contract:"] + [
        f"#   {name}: {value}" for name, value in fields.items() if value is not None
    ]
    return "\n".join(lines) + "\n"


BODY_WITH_DOWNGRADE = textwrap.dedent(
    '''
    """A migration."""


    def upgrade() -> None:
        pass


    def downgrade() -> None:
        print("undo")
    '''
)
BODY_EMPTY_DOWNGRADE = textwrap.dedent(
    '''
    def upgrade() -> None:
        pass


    def downgrade() -> None:
        """Nothing to undo."""
        pass
    '''
)
BODY_NO_DOWNGRADE = "def upgrade() -> None:\n    pass\n"

# (sample source, rule that must fire)
BAD_SAMPLES = {
    "no_block": (BODY_WITH_DOWNGRADE, "contract-block"),
    "block_after_code": (
        "import os\n" + _contract() + BODY_WITH_DOWNGRADE,
        "contract-block",
    ),
    "missing_owner": (_contract(owner=None) + BODY_WITH_DOWNGRADE, "field-missing"),
    "empty_ticket": (_contract(ticket='""') + BODY_WITH_DOWNGRADE, "field-empty"),
    "unknown_field": (
        _contract().replace("#   ticket", "#   reviewer: me\n#   ticket") + BODY_WITH_DOWNGRADE,
        "field-unknown",
    ),
    "duplicate_field": (
        _contract() + "#   owner: someone-else\n" + BODY_WITH_DOWNGRADE,
        "field-duplicate",
    ),
    "unknown_type": (_contract(type="sideways") + BODY_WITH_DOWNGRADE, "type"),
    "reversible_forward_plan": (
        _contract(rollback_plan='"forward_fix_only"') + BODY_WITH_DOWNGRADE,
        "reversible-rollback-plan",
    ),
    "reversible_without_downgrade": (_contract() + BODY_NO_DOWNGRADE, "reversible-downgrade"),
    "reversible_empty_downgrade": (_contract() + BODY_EMPTY_DOWNGRADE, "reversible-downgrade"),
    "forward_only_with_downgrade_plan": (
        _contract(type="forward_only") + BODY_NO_DOWNGRADE,
        "forward-only-rollback-plan",
    ),
    "odd_rollback_plan": (
        _contract(type="forward_only", rollback_plan='"restore the backup"') + BODY_NO_DOWNGRADE,
        "rollback-plan",
    ),
    "destructive_select_one": (
        _contract(
            type="destructive",
            rollback_plan='"forward_fix_only"',
            verification_query='"SELECT 1;"',
        )
        + BODY_NO_DOWNGRADE,
        "destructive-verification-query",
    ),
    "query_writes": (
        _contract(verification_query='"DELETE FROM widgets;"') + BODY_WITH_DOWNGRADE,
        "verification-query",
    ),
    "query_stacked": (
        _contract(verification_query='"SELECT 1 FROM widgets; DROP TABLE widgets;"')
        + BODY_WITH_DOWNGRADE,
        "verification-query",
    ),
    "query_select_into": (
        _contract(verification_query='"SELECT * INTO copy FROM widgets;"') + BODY_WITH_DOWNGRADE,
        "verification-query",
    ),
    "query_locks": (
        _contract(verification_query='"SELECT id FROM widgets FOR UPDATE;"') + BODY_WITH_DOWNGRADE,
        "verification-query",
    ),
    "query_set_config": (
        _contract(
            verification_query="\"SELECT set_config('transaction_read_only', 'off', false);\""
        )
        + BODY_WITH_DOWNGRADE,
        "verification-query",
    ),
}


def test_every_migration_in_the_repository_honours_its_contract() -> None:
    violations = check_directory(VERSIONS_DIR)
    assert not violations, "\n".join(str(v) for v in violations)


def test_every_revision_file_in_the_repository_is_checked() -> None:
    revisions = sorted(p for p in VERSIONS_DIR.glob("*.py") if p.name != "__init__.py")
    assert migration_files(VERSIONS_DIR) == revisions


def test_a_good_reversible_migration_passes(tmp_path: Path) -> None:
    path = tmp_path / "0002_widgets.py"
    path.write_text(GOOD_REVERSIBLE, encoding="utf-8")
    assert check_source(path, GOOD_REVERSIBLE) == []
    block = parse_contract(GOOD_REVERSIBLE)
    assert block is not None
    assert block.fields["rollback_plan"] == "alembic downgrade -1"
    assert block.fields["verification_query"] == "SELECT count(*) FROM widgets;"


@pytest.mark.parametrize(
    "source",
    [
        _contract(type="forward_only", rollback_plan='"forward_fix_only"') + BODY_NO_DOWNGRADE,
        _contract(
            type="destructive",
            rollback_plan='"forward_fix_only"',
            verification_query=(
                "\"SELECT count(*) FROM information_schema.columns WHERE table_name = 'widgets' "
                "AND column_name = 'legacy';\""
            ),
        )
        + BODY_NO_DOWNGRADE,
        "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n\n" + _contract() + BODY_WITH_DOWNGRADE,
        _contract(verification_query="'SELECT 1;'") + BODY_WITH_DOWNGRADE,
    ],
    ids=["forward_only", "destructive_with_real_query", "leading_comments", "single_quotes"],
)
def test_other_valid_contracts_pass(source: str, tmp_path: Path) -> None:
    assert check_source(tmp_path / "m.py", source) == []


@pytest.mark.parametrize("sample", sorted(BAD_SAMPLES))
def test_a_bad_contract_is_rejected_naming_the_rule(sample: str, tmp_path: Path) -> None:
    source, rule = BAD_SAMPLES[sample]
    path = tmp_path / f"{sample}.py"
    path.write_text(source, encoding="utf-8")
    violations = check_directory(tmp_path)
    assert rule in {v.rule for v in violations}, violations
    assert all(v.path == path for v in violations)
    assert all(str(v).startswith(f"{path.name}: [") for v in violations)


def test_the_command_lists_each_offending_file_and_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "0001_good.py").write_text(GOOD_REVERSIBLE, encoding="utf-8")
    (tmp_path / "0002_bad.py").write_text(BAD_SAMPLES["no_block"][0], encoding="utf-8")
    (tmp_path / "0003_bad.py").write_text(BAD_SAMPLES["query_writes"][0], encoding="utf-8")
    (tmp_path / "__init__.py").write_text("", encoding="utf-8")
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "0002_bad.py: [contract-block]" in out
    assert "0003_bad.py: [verification-query]" in out
    assert "0001_good.py" not in out
    assert "3 migration(s) checked, 2 violation(s)" in out


def test_an_empty_versions_directory_passes(tmp_path: Path) -> None:
    assert check_directory(tmp_path) == []
    assert main([str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("SELECT count(*) FROM tenants;", None),
        ("SELECT 'drop table; update' AS note FROM tenants", None),
        ("WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x", "does not start with SELECT"),
        ("SELECT 1; SELECT 2;", "more than one statement"),
        ("SELECT 1 -- sneaky", "comments"),
        ("SELECT nextval('seq')", "nextval"),
    ],
)
def test_verification_queries_must_be_one_read_only_select(
    query: str, fragment: str | None
) -> None:
    problem = read_only_select_problem(query)
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None
        assert fragment in problem
