"""push-ingest: batches, signed webhooks and large files into PostgreSQL, exactly once."""
