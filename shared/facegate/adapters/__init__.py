"""Adapters: the one place facegate talks to Redis and the object store."""
