"""The matcher service: Celery worker on queue ``match`` that turns probes
into signed door events (see :mod:`services.matcher.service`)."""
