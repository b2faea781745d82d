"""Storage backends for the scaled mode: backend URLs, ClickHouse spans, Qdrant vectors."""
