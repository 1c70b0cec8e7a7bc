"""Rate limits kept in Redis (DRF's ``SimpleRateThrottle`` on the default django-redis cache).

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` by scope, read per request
(so a settings change applies at once). A refused request is a 429 problem with code
``throttled`` and a ``Retry-After`` header (``voucher_service.problems``).

Keys hold ids only: the customer id, the client address, or for the phone scope the keyed
hash of the normalised number (never the number). The client address is the socket's peer
unless ``REST_FRAMEWORK["NUM_PROXIES"]`` trusts that many proxies' ``X-Forwarded-For``
entries: a header a client can write must not choose its own bucket.

When Redis is unreachable the cache (``IGNORE_EXCEPTIONS``) reads every history as empty
and drops the writes, so throttles fail *open*: on opening day an outage of the cache must
not turn into an outage of the eligibility check, which PostgreSQL can still answer. The
histories are a read-then-write (not atomic), so a burst of parallel requests can pass a
few over the limit; these limits shed floods, they are not quotas.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from voucher_service.phones import InvalidPhone, phone_hash


class _ScopedRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request, view) -> str | None:
        ident = self.ident(request)
        if ident is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class _PerCustomer(_ScopedRateThrottle):
    def ident(self, request) -> str | None:
        customer_id = getattr(request.user, "customer_id", None)
        return None if customer_id is None else str(customer_id)


class _PerClientAddress(_ScopedRateThrottle):
    def ident(self, request) -> str | None:
        return self.get_ident(request)


class _PerPhone(_ScopedRateThrottle):
    """Keyed by the phone's keyed hash; a body without a valid phone is left to the view."""

    def ident(self, request) -> str | None:
        phone = request.data.get("phone") if isinstance(request.data, dict) else None
        if not isinstance(phone, str):
            return None
        try:
            return phone_hash(phone, key=settings.PHONE_HASH_KEY).hex()
        except InvalidPhone:
            return None


class CustomerCheckThrottle(_PerCustomer):
    scope = "customer_check"


class IpCheckThrottle(_PerClientAddress):
    scope = "ip_check"


class ClaimCustomerThrottle(_PerCustomer):
    scope = "claim_customer"


class ClaimPhoneThrottle(_PerPhone):
    scope = "claim_phone"


class ClaimIpThrottle(_PerClientAddress):
    scope = "claim_ip"
