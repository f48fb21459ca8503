"""alerting: alert events into alerts, silences, and (next) their delivery."""
