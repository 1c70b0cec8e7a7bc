"""Principals: staff roles and client services, each with an opaque token stored hashed."""

from django.db import models


class Role(models.TextChoices):
    OPERATIONS = "operations"
    FINANCE = "finance"
    SUPPORT = "support"
    CHECKOUT = "checkout"
    IDENTITY = "identity"


class Principal(models.Model):
    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=20, choices=Role.choices)
    # SHA-256 of the token; the token itself is shown once and never stored.
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="principal_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def audit_name(self) -> str:
        return f"principal:{self.name}"
