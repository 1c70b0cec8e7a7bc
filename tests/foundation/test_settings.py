"""Start-up configuration, checked in fresh processes with a clean environment."""

import io
import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import caches

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("SECRET_KEY", "PHONE_HASH_KEY", "CUSTOMER_JWT_KEY", "VOUCHER_CODE_KEY")


def _production_env(**overrides: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "DEBUG": "0"}
    env.update({name: secrets.token_urlsafe(50) for name in SECRETS})
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", SECRETS)
def test_missing_secret_stops_start_up_naming_it(missing):
    result = _manage("check", env=_production_env(**{missing: None}))
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_debug_fills_in_development_secrets():
    env = {"PATH": os.environ["PATH"], "DEBUG": "1"}
    result = _manage("check", env=env)
    assert result.returncode == 0, result.stderr


def test_minting_customer_tokens_is_refused_in_production():
    result = _manage("mint_customer_token", "5", env=_production_env())
    assert result.returncode != 0
    assert "disabled" in result.stderr


def test_cache_outage_logs_one_line_without_traceback(settings, private_redis):
    settings.CACHES = {"default": {**settings.CACHES["default"],
                                   "LOCATION": private_redis.url()}}
    private_redis.kill()
    stream = io.StringIO()
    handler = logging.getLogger(settings.DJANGO_REDIS_LOGGER).handlers[0]
    original, handler.stream = handler.stream, stream
    try:
        assert caches.create_connection("default").get("anything") is None
    finally:
        handler.stream = original
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all("Traceback" not in json.dumps(line) for line in lines)
    assert "ConnectionError" in lines[0]["message"]
