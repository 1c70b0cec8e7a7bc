"""Writes on principals: creation (token shown once) and revocation, both audited."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import Principal, Role
from voucher_service.audit import record_event

# A marker that tells opaque tokens from JWTs, not a secret.
TOKEN_PREFIX = "vst_"  # noqa: S105  # nosec B105


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def create_principal(*, role: str, name: str, actor: str = "system:cli") -> tuple[Principal, str]:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(Role.values)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    principal = Principal.objects.create(name=name, role=role, token_hash=hash_token(token))
    record_event(
        actor=actor,
        action="principal.created",
        target_type="principal",
        target_id=str(principal.pk),
        payload={"role": role, "name": name},
    )
    return principal, token


@transaction.atomic
def revoke_principal(*, name: str, actor: str = "system:cli") -> Principal:
    principal = Principal.objects.select_for_update().get(name=name)
    if principal.revoked_at is None:
        principal.revoked_at = timezone.now()
        principal.save(update_fields=["revoked_at"])
        record_event(
            actor=actor,
            action="principal.revoked",
            target_type="principal",
            target_id=str(principal.pk),
            payload={"name": name},
        )
    return principal
