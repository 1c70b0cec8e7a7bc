"""Customers, as the shop's identity provider vouches for them in a JWT."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from django.conf import settings

CUSTOMER_ROLE = "customer"


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
    """Verifies signature, audience and expiry; ``sub`` must be a positive customer id."""
    try:
        claims = jwt.decode(
            token,
            settings.CUSTOMER_JWT_KEY,
            algorithms=[settings.CUSTOMER_JWT_ALGORITHM],
            audience=settings.CUSTOMER_JWT_AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidCustomerToken(str(exc)) from exc
    sub = str(claims["sub"])
    if not sub.isdigit() or not 0 < int(sub) < 2**63:
        raise InvalidCustomerToken("sub is not a customer id")
    return Customer(customer_id=int(sub))


def mint_customer_token(customer_id: int, *, ttl_seconds: int = 3600) -> str:
    """Development only: signs a token as the shop's identity provider would."""
    if not settings.CUSTOMER_JWT_DEV_MINTING:
        raise PermissionError("customer token minting is disabled outside development")
    now = int(time.time())
    return jwt.encode(
        {
            "sub": str(customer_id),
            "aud": settings.CUSTOMER_JWT_AUDIENCE,
            "iat": now,
            "exp": now + ttl_seconds,
        },
        settings.CUSTOMER_JWT_KEY,
        algorithm=settings.CUSTOMER_JWT_ALGORITHM,
    )
