"""Staff who sign in to the dashboard with a password: Django users in a role group."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import Group, User
from django.db import transaction

from voucher_service.audit import record_event

DASHBOARD_ROLES = ("finance", "operations")


def dashboard_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(user.groups.filter(name__in=DASHBOARD_ROLES).values_list("name", flat=True))


@transaction.atomic
def create_dashboard_user(*, username: str, role: str, actor: str = "system:cli") -> str:
    """Creates the user in the role's group and returns a generated password (shown once)."""
    if role not in DASHBOARD_ROLES:
        raise ValueError(f"role must be one of {', '.join(DASHBOARD_ROLES)}")
    password = secrets.token_urlsafe(18)
    user = User.objects.create_user(username=username, password=password)
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    record_event(actor=actor, action="dashboard_user.created", target_type="user",
                 target_id=str(user.pk), payload={"role": role})
    return password
