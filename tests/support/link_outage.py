"""Drive a connector outage through the emulator: the connector's silence and the passing of
minutes (hysteresis, group wait and interval) are simulated in the database, the minute ticks
are fired by hand."""

from __future__ import annotations

from typing import Any

from local_emulator.emulator import Emulator


class LinkOutage:
    def __init__(self, emulator: Emulator, database_url: str, connector_id: str) -> None:
        from hybrid.db import database

        self.emulator = emulator
        self.connector_id = connector_id
        self._db = database(database_url)

    def heartbeat(self, age_s: int) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE connectors SET last_seen_at = now() - make_interval(secs => :age) "
                "WHERE id = :id",
                age=age_s,
                id=self.connector_id,
            )

    def probe(self, times: int = 1) -> None:
        for _ in range(times):
            result = self.emulator.fire_timer("status_probe", "status-probe-every-minute").result()
            assert result.ok, result.to_dict()

    def go_down(self) -> None:
        """The connector stops polling; after the hysteresis (3 probes) it is disconnected."""
        self.heartbeat(600)
        self.probe(3)

    def come_back(self) -> None:
        self.heartbeat(1)
        self.probe(2)

    def alerting(self) -> dict[str, Any]:
        result = self.emulator.fire_timer("alerting", "alerting-every-minute").result()
        assert result.ok, result.to_dict()
        return dict(result.payload or {})

    def minutes_pass(self, minutes: int = 10) -> None:
        """Group wait and group interval pass without waiting for them."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE alerts SET starts_at = starts_at - make_interval(mins => :m) "
                "WHERE labels->>'connector_id' = :id",
                m=minutes,
                id=self.connector_id,
            )
            tx.execute(
                "UPDATE alert_groups SET last_notified_at = "
                "last_notified_at - make_interval(mins => :m)",
                m=minutes,
            )

    def leases_expire(self) -> None:
        """Deliveries leased by a sender that died become due again (their lease is a minute)."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE alert_deliveries SET next_attempt_at = now() WHERE status = 'pending'"
            )

    def alert_state(self) -> str | None:
        with self._db.transaction() as tx:
            return tx.scalar(
                "SELECT status FROM alerts WHERE labels->>'connector_id' = :id "
                "AND labels->>'alertname' = 'ConnectorDisconnected'",
                id=self.connector_id,
            )
