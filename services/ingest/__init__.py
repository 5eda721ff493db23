"""The ingest service: object-store webhooks, presigned URLs and direct
uploads in; ``facegate.encode`` tasks out (see ``app.py``)."""
