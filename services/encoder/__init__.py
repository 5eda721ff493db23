"""The encoder worker: uploads in, face encodings in Redis out (batched)."""
