"""status-probe: the minute probe of every link, the status API."""
