"""connector-relay: the outbound-only protocol for connectors behind a firewall."""
