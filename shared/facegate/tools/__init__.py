"""Front ends for people: the ``facegate`` command line, the local stack,
the demo and its sample photos."""
