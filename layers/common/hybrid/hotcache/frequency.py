"""The fingerprint log in PostgreSQL: every query that reached the connector once, sealed, with
an exponentially decayed use score. The request path only counts uses in Redis (one
HINCRBY in the pipeline it already sends); the timer adds those counts here, decaying the
stored score to now first, and picks each tenant's hot set as its top queries by score now.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybrid.crypto import SecretBox
from hybrid.db import Transaction

DEFAULT_HALF_LIFE_S = 3600.0
_DECAYED = (
    "f.score * power(0.5::float8, CAST(extract(epoch FROM (now() - f.scored_at)) AS float8) "
    "/ CAST(:half_life AS float8))"
)


@dataclass(frozen=True)
class HotQuery:
    """One query of a tenant's hot set, with what the refresh needs to run it again."""

    tenant_id: str
    fingerprint: str
    connector_id: str
    source: str
    score: float
    rank: int
    query_sealed: bytes

    def open(self, box: SecretBox) -> tuple[str, list[Any]]:
        """The query's SQL and parameters."""
        data = json.loads(
            box.open(self.query_sealed, owner=_owner(self.tenant_id, self.fingerprint))
        )
        return str(data["sql"]), list(data["params"])


def _owner(tenant_id: str, fp: str) -> str:
    return f"query:{tenant_id}:{fp}"


def remember(
    tx: Transaction,
    box: SecretBox,
    *,
    tenant_id: str,
    fp: str,
    connector_id: str,
    source: str,
    sql: str,
    params: Sequence[Any],
) -> None:
    """Log a query that reached the connector (a miss); a caller-fault refusal noted by the
    refresh is cleared, since the query worked again."""
    sealed = box.seal(
        json.dumps({"sql": sql, "params": list(params)}, ensure_ascii=False),
        owner=_owner(tenant_id, fp),
    )
    tx.execute(
        "INSERT INTO query_fingerprints (tenant_id, fingerprint, connector_id, source, "
        "query_sealed) VALUES (:tenant_id, :fp, :connector_id, :source, :sealed) "
        "ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET last_used_at = now(), "
        "refresh_error = NULL",
        tenant_id=tenant_id,
        fp=fp,
        connector_id=connector_id,
        source=source,
        sealed=sealed,
    )


def tenants(tx: Transaction) -> list[str]:
    return [
        row["tenant_id"] for row in tx.rows("SELECT DISTINCT tenant_id FROM query_fingerprints")
    ]


def add_uses(
    tx: Transaction,
    tenant_id: str,
    counts: Mapping[str, int],
    *,
    half_life_s: float = DEFAULT_HALF_LIFE_S,
) -> int:
    """Add counted uses to the scores (decayed to now first); how many queries moved."""
    if not counts:
        return 0
    fps = sorted(counts)
    return tx.execute(
        f"UPDATE query_fingerprints f SET score = {_DECAYED} + u.uses, scored_at = now(), "
        "hits_total = f.hits_total + u.uses, last_used_at = now() "
        "FROM unnest(CAST(:fps AS text[]), CAST(:uses AS bigint[])) AS u (fingerprint, uses) "
        "WHERE f.tenant_id = :tenant_id AND f.fingerprint = u.fingerprint",
        tenant_id=tenant_id,
        fps=fps,
        uses=[counts[fp] for fp in fps],
        half_life=half_life_s,
    )


def hot_set(
    tx: Transaction,
    *,
    per_tenant: int,
    min_score: float,
    half_life_s: float = DEFAULT_HALF_LIFE_S,
) -> list[HotQuery]:
    """Each tenant's top `per_tenant` queries by decayed score (at least `min_score`), on
    connectors that still exist, leaving out queries the connector refused on refresh."""
    rows = tx.rows(
        "SELECT tenant_id, fingerprint, connector_id, source, query_sealed, score, rank FROM ("
        f"SELECT f.tenant_id, f.fingerprint, f.connector_id, f.source, f.query_sealed, "
        f"{_DECAYED} AS score, row_number() OVER (PARTITION BY f.tenant_id "
        f"ORDER BY {_DECAYED} DESC, f.fingerprint) AS rank "
        "FROM query_fingerprints f JOIN connectors c ON c.id = f.connector_id "
        "AND c.deleted_at IS NULL "
        f"WHERE f.refresh_error IS NULL AND {_DECAYED} >= CAST(:min_score AS float8)) ranked "
        "WHERE rank <= :per_tenant ORDER BY rank, tenant_id",
        per_tenant=per_tenant,
        min_score=min_score,
        half_life=half_life_s,
    )
    return [
        HotQuery(
            tenant_id=row["tenant_id"],
            fingerprint=row["fingerprint"],
            connector_id=row["connector_id"],
            source=row["source"],
            score=float(row["score"]),
            rank=int(row["rank"]),
            query_sealed=bytes(row["query_sealed"]),
        )
        for row in rows
    ]


def mark_refreshed(tx: Transaction, tenant_id: str, fps: Sequence[str]) -> None:
    if fps:
        tx.execute(
            "UPDATE query_fingerprints SET refreshed_at = now() "
            "WHERE tenant_id = :tenant_id AND fingerprint = ANY(CAST(:fps AS text[]))",
            tenant_id=tenant_id,
            fps=list(fps),
        )


def mark_refused(tx: Transaction, tenant_id: str, fp: str, code: str) -> None:
    """The connector refused the query on refresh (the caller's kind of error): it leaves
    the hot set until a request runs it successfully again."""
    tx.execute(
        "UPDATE query_fingerprints SET refresh_error = :code "
        "WHERE tenant_id = :tenant_id AND fingerprint = :fp",
        tenant_id=tenant_id,
        fp=fp,
        code=code[:64],
    )


def prune(tx: Transaction, *, unused_for_s: int) -> int:
    """Forget queries nobody used for that long."""
    return tx.execute(
        "DELETE FROM query_fingerprints "
        "WHERE last_used_at < now() - make_interval(secs => :seconds)",
        seconds=unused_for_s,
    )
