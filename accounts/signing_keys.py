"""The key a customer JWT must be signed with.

With ``CUSTOMER_JWT_JWKS_URL`` set, the identity provider's JSON Web Key Set, fetched with
PyJWT's ``PyJWKClient`` and the key chosen by the token's ``kid``. The set is cached for
``CUSTOMER_JWT_JWKS_LIFESPAN_SECONDS``, so a key the provider withdraws stops verifying
within that time, without a restart. A token naming a ``kid`` the cached set lacks (the
provider rotated) fetches the set again at once, but at most once per
``CUSTOMER_JWT_JWKS_REFRESH_SECONDS`` in a process, so tokens with made-up ``kid``s cannot
make every request call the provider. Keys are not cached one by one (``cache_keys``):
that cache never expires, and a withdrawn key would verify for as long as the process
lives.

Without it, the static ``CUSTOMER_JWT_KEY`` (development).
"""

from __future__ import annotations

import functools

import jwt
from django.conf import settings

FETCH_TIMEOUT_SECONDS = 5


@functools.cache
def _key_set(url: str, lifespan: float, refresh: float) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=lifespan,
                           cooldown_duration=refresh, timeout=FETCH_TIMEOUT_SECONDS)


def verification_key(token: str) -> jwt.PyJWK | str:
    """The key ``token`` must be signed with; raises ``jwt.PyJWTError`` when its ``kid``
    names no key of the set (or the set cannot be fetched)."""
    if not settings.CUSTOMER_JWT_JWKS_URL:
        return settings.CUSTOMER_JWT_KEY
    key_set = _key_set(settings.CUSTOMER_JWT_JWKS_URL,
                       settings.CUSTOMER_JWT_JWKS_LIFESPAN_SECONDS,
                       settings.CUSTOMER_JWT_JWKS_REFRESH_SECONDS)
    return key_set.get_signing_key_from_jwt(token)
