"""The pure core: errors, messages, key names, signing, door policy,
embedding math and evaluation. No I/O, no clock of its own, nothing outside
the standard library and numpy."""
