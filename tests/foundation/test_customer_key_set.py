"""Customer JWTs verified against the identity provider's key set (JWKS), served here on
loopback: keys chosen by ``kid``, the issuer checked, the set cached and fetched again on
an unknown ``kid`` at most once per refresh interval, a rotation taken without a restart."""

from __future__ import annotations

import time

import jwt
import pytest

from accounts.identity import mint_customer_token
from tests.identity_provider import ISSUER, KeySetServer, SigningKey

pytestmark = pytest.mark.django_db
LIFESPAN = 1.0
REFRESH = 0.5
PROTECTED = "/api/v1/me/vouchers"


@pytest.fixture(scope="module")
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey("2026-01"), SigningKey("2026-02")


@pytest.fixture
def provider(keys, settings):
    server = KeySetServer(keys[0])
    settings.CUSTOMER_JWT_JWKS_URL = server.url
    settings.CUSTOMER_JWT_ISSUER = ISSUER
    settings.CUSTOMER_JWT_ALGORITHM = "RS256"
    settings.CUSTOMER_JWT_JWKS_LIFESPAN_SECONDS = LIFESPAN
    settings.CUSTOMER_JWT_JWKS_REFRESH_SECONDS = REFRESH
    yield server
    server.stop()


def status(client_for, token: str) -> int:
    return client_for(token).get(PROTECTED).status_code


def test_a_rotated_key_verifies_at_once_and_a_withdrawn_one_stops_within_the_lifespan(
        provider, keys, client_for):
    """The provider publishes the next key beside the current one and signs with it: its
    tokens pass as soon as the refresh interval allows a fetch. Once the old key is
    withdrawn from the set, its tokens fail when the cached set expires, while the new
    ones go on passing: one process, no restart."""
    old, new = keys
    assert status(client_for, old.token(7)) == 200
    provider.publish(old, new)
    time.sleep(REFRESH)
    assert status(client_for, new.token(7)) == 200
    assert status(client_for, old.token(7)) == 200

    provider.publish(new)
    time.sleep(LIFESPAN + 0.1)
    assert status(client_for, old.token(7)) == 401
    assert status(client_for, new.token(7)) == 200


def test_unknown_kids_fetch_the_set_at_most_once_per_refresh_interval(provider, keys,
                                                                      client_for):
    """Tokens naming kids the set does not have (made up, or not yet published) are
    refused; however many arrive, the provider is asked again at most once per interval."""
    old, _ = keys
    assert status(client_for, old.token(7)) == 200
    fetched = provider.fetches
    time.sleep(REFRESH)
    for n in range(20):
        assert status(client_for, old.token(7, kid=f"made-up-{n}")) == 401
    assert provider.fetches == fetched + 1


@pytest.mark.parametrize("issuer", ["another-provider", None])
def test_the_issuer_is_checked(provider, keys, client_for, issuer):
    old, _ = keys
    claims = jwt.decode(old.token(7), options={"verify_signature": False})
    if issuer:
        claims["iss"] = issuer
    else:
        del claims["iss"]
    token = jwt.encode(claims, old.private, algorithm="RS256", headers={"kid": old.kid})
    assert status(client_for, token) == 401


@pytest.mark.parametrize("secret", ["the development key", "a-guessed-secret"])
def test_a_token_signed_with_a_shared_secret_is_refused(provider, keys, client_for, settings,
                                                        secret):
    """With a key set only its public-key algorithm verifies: an HS256 token naming a
    published kid is refused, even signed with the static development key."""
    old, _ = keys
    claims = jwt.decode(old.token(7), options={"verify_signature": False})
    key = settings.CUSTOMER_JWT_KEY if secret == "the development key" else secret
    token = jwt.encode(claims, key, algorithm="HS256", headers={"kid": old.kid})
    assert status(client_for, token) == 401


def test_development_minting_is_off_with_a_key_set(provider):
    with pytest.raises(PermissionError):
        mint_customer_token(7)
