"""SMS backends for real: files on disk, an HTTP provider served by a local http.server
thread (retries after 503 and after a read timeout, bounded failure), the console line."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from voucher_service.sms import ConsoleBackend, FileBackend, HttpBackend, mask_phone, sms_backend


class Provider:
    """A local SMS provider whose answers are scripted: each entry is (delay seconds,
    status); it records what it received."""

    def __init__(self, script: list[tuple[float, int]]) -> None:
        self.script = list(script)
        self.received: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                provider.received.append({"headers": dict(self.headers),
                                          "body": json.loads(self.rfile.read(length))})
                delay, status = provider.script.pop(0) if provider.script else (0, 200)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/messages"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    made: list[Provider] = []

    def make(*script: tuple[float, int]) -> Provider:
        made.append(Provider(list(script)))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _backend(url: str, *, read_timeout: float = 1.0, retries: int = 2) -> HttpBackend:
    return HttpBackend(url, "sms-token", connect_timeout=1.0, read_timeout=read_timeout,
                       retries=retries, backoff_factor=0.01)


def test_http_posts_the_message_with_token_and_idempotency_key(provider):
    server = provider((0, 200))
    _backend(server.url).send(to="01012345678", body="code 123456", message_id="m-1")
    [request] = server.received
    assert request["body"] == {"to": "01012345678", "body": "code 123456"}
    assert request["headers"]["Authorization"] == "Bearer sms-token"
    assert request["headers"]["Idempotency-Key"] == "m-1"


def test_http_retries_a_503(provider):
    server = provider((0, 503), (0, 200))
    _backend(server.url).send(to="01012345678", body="b", message_id="m-2")
    assert len(server.received) == 2


def test_http_retries_after_a_read_timeout(provider):
    server = provider((0.6, 200), (0, 200))
    started = time.monotonic()
    _backend(server.url, read_timeout=0.3).send(to="01012345678", body="b", message_id="m-3")
    assert len(server.received) == 2
    assert time.monotonic() - started < 3


def test_http_gives_up_after_its_retries_within_bounded_time(provider):
    server = provider(*[(0.5, 200)] * 3)
    started = time.monotonic()
    with pytest.raises(requests.RequestException):
        _backend(server.url, read_timeout=0.2, retries=2).send(to="01012345678", body="b",
                                                               message_id="m-4")
    assert len(server.received) == 3  # the first try and two retries
    assert time.monotonic() - started < 3


def test_http_is_chosen_by_settings(settings, provider):
    server = provider((0, 200))
    settings.SMS_BACKEND = "http"
    settings.SMS_HTTP_URL = server.url
    sms_backend().send(to="01012345678", body="b", message_id="m-5")
    assert len(server.received) == 1


def test_file_backend_writes_one_json_file_per_message(tmp_path, settings):
    settings.SMS_FILE_PATH = str(tmp_path)
    settings.SMS_BACKEND = "file"
    backend = sms_backend()
    assert isinstance(backend, FileBackend)
    backend.send(to="01012345678", body="one", message_id="a")
    backend.send(to="01087654321", body="two", message_id="b")
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".json", ".json"]
    records = [json.loads(f.read_text()) for f in files]
    assert [(r["to"], r["body"]) for r in records] == [("01012345678", "one"),
                                                        ("01087654321", "two")]
    assert all(set(r) == {"to", "body", "sent_at"} for r in records)


def test_console_logs_no_phone_number(caplog):
    with caplog.at_level(logging.INFO, logger="voucher_service.sms"):
        ConsoleBackend().send(to="01012345678", body="code 123456", message_id="c")
    [record] = caplog.records
    assert record.to == mask_phone("01012345678") == "*********78"
    assert "12345678" not in caplog.text and "1012345678" not in str(record.__dict__)


def test_an_unknown_backend_is_refused(settings):
    settings.SMS_BACKEND = "carrier-pigeon"
    with pytest.raises(ValueError, match="carrier-pigeon"):
        sms_backend()
