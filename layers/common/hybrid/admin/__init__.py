"""admin-api: tenants, API keys, connectors, quotas and the audit log."""
