"""The pure core: errors, messages, key names, door-event signing and its
lock-side check, door policy, embedding math and evaluation. No I/O, no
clock of its own, nothing outside the standard library, numpy and (for the
Ed25519 signatures) cryptography."""
