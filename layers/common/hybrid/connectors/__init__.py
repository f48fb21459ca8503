"""Connectors: the registry of on-prem connectors and their sources."""
