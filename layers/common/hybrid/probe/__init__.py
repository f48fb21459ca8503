"""status-probe: connection state and latency of every connector and source."""
