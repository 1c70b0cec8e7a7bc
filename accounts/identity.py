"""Customers, as the shop's identity provider vouches for them in a JWT."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import jwt
from django.conf import settings

from accounts.signing_keys import verification_key

CUSTOMER_ROLE = "customer"
logger = logging.getLogger(__name__)


class InvalidCustomerToken(Exception):
    pass


@dataclass(frozen=True)
class Customer:
    customer_id: int
    role: str = CUSTOMER_ROLE
    is_authenticated: bool = True

    @property
    def audit_name(self) -> str:
        return f"customer:{self.customer_id}"


def customer_from_token(token: str) -> Customer:
    """Verifies signature, audience, expiry and, when ``CUSTOMER_JWT_ISSUER`` is set, the
    issuer; ``sub`` must be a positive customer id."""
    issuer = settings.CUSTOMER_JWT_ISSUER or None
    try:
        claims = jwt.decode(
            token,
            verification_key(token),
            algorithms=[settings.CUSTOMER_JWT_ALGORITHM],
            audience=settings.CUSTOMER_JWT_AUDIENCE,
            issuer=issuer,
            options={"require": ["exp", "sub", "aud", *(["iss"] if issuer else [])]},
        )
    except jwt.PyJWKClientConnectionError as exc:
        logger.warning("customer JWT refused: the identity provider's key set is "
                       "unreachable (%s)", exc)
        raise InvalidCustomerToken(str(exc)) from exc
    except jwt.PyJWTError as exc:
        raise InvalidCustomerToken(str(exc)) from exc
    sub = str(claims["sub"])
    if not sub.isdigit() or not 0 < int(sub) < 2**63:
        raise InvalidCustomerToken("sub is not a customer id")
    return Customer(customer_id=int(sub))


def mint_customer_token(customer_id: int, *, ttl_seconds: int = 3600) -> str:
    """Development only: signs a token with the static key, as the shop's identity
    provider would (its key set's private keys are the provider's alone)."""
    if not settings.CUSTOMER_JWT_DEV_MINTING or settings.CUSTOMER_JWT_JWKS_URL:
        raise PermissionError("customer token minting is disabled outside development and "
                              "with the identity provider's key set")
    now = int(time.time())
    issuer = {"iss": settings.CUSTOMER_JWT_ISSUER} if settings.CUSTOMER_JWT_ISSUER else {}
    return jwt.encode(
        {
            "sub": str(customer_id),
            "aud": settings.CUSTOMER_JWT_AUDIENCE,
            "iat": now,
            "exp": now + ttl_seconds,
            **issuer,
        },
        settings.CUSTOMER_JWT_KEY,
        algorithm=settings.CUSTOMER_JWT_ALGORITHM,
    )
