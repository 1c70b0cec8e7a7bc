"""gunicorn's settings as deployed: every gunicorn started in this directory reads them (the
Dockerfile's, ``make run``'s, the tests' and the benchmarks'); the command line adds the
address and the workers.

A worker told to stop (SIGTERM from a deployment, a scale-down or its master) takes no new
request and finishes those in flight for up to ``graceful_timeout`` seconds before it
exits: a checkout under way answers its client instead of being cut off. A checkout waits
at most ``IDEMPOTENCY_KEY_WAIT_MS`` (5 s) for its key, so 30 s covers it with room; the
orchestrator's stop grace period must be longer still (docs/DEPLOYMENT.md).
"""

graceful_timeout = 30
