"""Bearer authentication: a customer JWT, or a principal's opaque token."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts.identity import InvalidCustomerToken, customer_from_token
from accounts.models import Principal
from accounts.services import TOKEN_PREFIX, hash_token


class BearerAuthentication(authentication.BaseAuthentication):
    """Opaque tokens are found by their SHA-256, so the lookup reveals nothing by timing:
    the caller cannot steer the hash, and the token itself is never compared."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        if token.startswith(TOKEN_PREFIX):
            principal = (
                Principal.objects.filter(token_hash=hash_token(token), revoked_at__isnull=True)
                .only("id", "name", "role")
                .first()
            )
            if principal is None:
                raise exceptions.AuthenticationFailed("Invalid or revoked token.")
            return principal, token
        try:
            return customer_from_token(token), token
        except InvalidCustomerToken as exc:
            raise exceptions.AuthenticationFailed("Invalid customer token.") from exc

    def authenticate_header(self, request):
        return 'Bearer realm="voucher-service"'
