import json
import logging

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.auth_urls")]


@pytest.fixture
def checkout(role_client):
    return role_client("checkout")


def test_validation_error_lists_fields(checkout):
    response = checkout.post("/t/echo", {"amount_krw": 0}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    assert "amount_krw" in body["errors"]


@pytest.mark.parametrize("value", ["12", 1.5, 12.0, True, None, [], {}, -5, 10**15])
def test_wrong_types_are_400(checkout, value):
    response = checkout.post("/t/echo", {"amount_krw": value}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_malformed_json_is_400(checkout):
    response = checkout.post("/t/echo", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_wrong_media_type_is_415(checkout):
    response = checkout.post("/t/echo", data="amount_krw=1", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_wrong_method_is_405(checkout):
    response = checkout.get("/t/echo")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_body_over_one_mib_is_413(checkout):
    body = json.dumps({"amount_krw": 1, "pad": "x" * (1024 * 1024)})
    response = checkout.post("/t/echo", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "request_too_large"


def test_unknown_url_is_a_problem_404(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_crash_is_a_500_problem_without_trace(client, caplog):
    client.raise_request_exception = False
    with caplog.at_level(logging.ERROR):
        response = client.get("/t/crash")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    text = response.content.decode()
    assert "secret internal detail" not in text and "Traceback" not in text
    assert response.json()["code"] == "internal_error"
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


def test_crash_shows_no_trace_even_with_debug(client, settings):
    settings.DEBUG = True
    client.raise_request_exception = False
    response = client.get("/t/crash")
    assert response.status_code == 500
    assert "secret internal detail" not in response.content.decode()


def test_every_response_has_a_request_id(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32
