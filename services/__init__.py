"""facegate services: ingest, encoder, matcher (one package each)."""
