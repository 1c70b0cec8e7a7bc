"""Liveness and readiness: readiness asks PostgreSQL, Redis and the Celery broker."""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from kombu import Connection

logger = logging.getLogger(__name__)
_TIMEOUT_SECONDS = 1.0


def _check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=_TIMEOUT_SECONDS,
        socket_timeout=_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, timeout=_TIMEOUT_SECONDS)


CHECKS = {"postgres": _check_postgres, "redis": _check_redis, "broker": _check_broker}


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            logger.warning(
                "readiness check failed", extra={"check": name, "error": type(exc).__name__}
            )
            results[name] = "unavailable"
    failed = sorted(name for name, state in results.items() if state != "ok")
    if failed:
        return JsonResponse(
            {
                "type": "https://voucher-service.example/problems/not-ready",
                "title": "Service Unavailable",
                "status": 503,
                "code": "not_ready",
                "detail": f"Unavailable: {', '.join(failed)}.",
                "failed": failed,
                "checks": results,
            },
            status=503,
            content_type="application/problem+json",
        )
    return JsonResponse({"status": "ready", "checks": results})
