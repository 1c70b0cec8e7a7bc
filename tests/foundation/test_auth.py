import time

import jwt
import pytest
from django.core.management import call_command

from accounts.models import Principal

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.auth_urls")]


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail"} <= body.keys()
    return body


def test_no_token_is_401_with_bearer_challenge(client_for):
    response = client_for().get("/t/finance")
    _problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer", "Bearer vst_nope", "Basic abc", "Bearer a.b.c"])
def test_bad_credentials_are_401(client, header):
    response = client.get("/t/finance", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_principal_token_of_the_right_role_works(role_client):
    response = role_client("finance").get("/t/finance")
    assert response.status_code == 200


@pytest.mark.parametrize("role", ["operations", "support", "checkout", "identity"])
def test_other_roles_are_403(role_client, role):
    _problem(role_client(role).get("/t/finance"), 403, "permission_denied")


def test_customer_token_is_not_a_staff_role(customer_client):
    _problem(customer_client(42).get("/t/finance"), 403, "permission_denied")


def test_customer_reaches_own_object_and_gets_404_for_another(customer_client):
    client = customer_client(42)
    assert client.get("/t/customer").json() == {"customer_id": 42}
    assert client.get("/t/objects/42").status_code == 200
    _problem(client.get("/t/objects/43"), 404, "not_found")


def test_staff_token_cannot_act_as_customer(role_client):
    _problem(role_client("support").get("/t/customer"), 403, "permission_denied")


def test_revoked_token_is_401(make_principal, client_for):
    principal, token = make_principal("finance")
    call_command("revoke_principal", "--name", principal.name)
    assert client_for(token).get("/t/finance").status_code == 401


def test_token_is_stored_only_as_a_hash(make_principal):
    principal, token = make_principal("finance")
    stored = Principal.objects.get(pk=principal.pk)
    assert token not in stored.token_hash
    assert len(stored.token_hash) == 64


def test_create_principal_command_prints_a_working_token(client_for, capsys):
    call_command("create_principal", "--role", "finance", "--name", "cli-finance")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert client_for(token).get("/t/finance").status_code == 200


def _customer_jwt(settings, **overrides) -> str:
    claims = {"sub": "7", "aud": settings.CUSTOMER_JWT_AUDIENCE, "exp": int(time.time()) + 60}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, settings.CUSTOMER_JWT_KEY, algorithm=settings.CUSTOMER_JWT_ALGORITHM)


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 10},
        {"exp": None},
        {"aud": "another-service"},
        {"aud": None},
        {"sub": "not-a-number"},
        {"sub": "0"},
        {"sub": None},
    ],
)
def test_customer_jwt_rules(client_for, settings, overrides):
    response = client_for(_customer_jwt(settings, **overrides)).get("/t/customer")
    _problem(response, 401, "authentication_failed")


def test_customer_jwt_with_another_key_is_refused(client_for, settings):
    token = jwt.encode(
        {"sub": "7", "aud": settings.CUSTOMER_JWT_AUDIENCE, "exp": int(time.time()) + 60},
        "another-key-of-at-least-thirty-two-bytes!!",
        algorithm="HS256",
    )
    assert client_for(token).get("/t/customer").status_code == 401


def test_customer_jwt_with_alg_none_is_refused(client_for, settings):
    token = jwt.encode(
        {"sub": "7", "aud": settings.CUSTOMER_JWT_AUDIENCE, "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    assert client_for(token).get("/t/customer").status_code == 401


def test_mint_customer_token_refuses_without_development_key(settings):
    settings.CUSTOMER_JWT_DEV_MINTING = False
    with pytest.raises(Exception, match="disabled"):
        call_command("mint_customer_token", "5")
