"""Role permissions: every authenticated caller (principal or customer) has one ``role``."""

from rest_framework.permissions import BasePermission


class _RolePermission(BasePermission):
    roles: frozenset[str] = frozenset()
    message = "Your role may not do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "role", None) in self.roles)


def roles(*allowed: str) -> type[BasePermission]:
    """A permission class admitting exactly the given roles, e.g. ``roles("finance")``."""
    return type(f"Roles_{'_'.join(allowed)}", (_RolePermission,), {"roles": frozenset(allowed)})


IsCustomer = roles("customer")
IsOperations = roles("operations")
IsFinance = roles("finance")
IsSupport = roles("support")
IsCheckout = roles("checkout")
IsIdentity = roles("identity")
