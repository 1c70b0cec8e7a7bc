"""Korean mobile numbers: one normal form and its keyed hash.

The registry stores no phone number, only ``HMAC-SHA256(PHONE_HASH_KEY, normal form)``.
The normal form is the national 0-prefixed digit string (``01012345678``). The same rule
is written once more in SQL (``PHONE_NORMAL_FORM_SQL``) so that a bulk import normalises
and hashes millions of rows in PostgreSQL; tests hold the two to the same answers.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# Separators people type, then an international prefix (+82, 82, 0082, with or without
# the trunk 0 in brackets) turned into the trunk 0.
_SEPARATORS = re.compile(r"[\s\-.()]")
_COUNTRY_PREFIX = re.compile(r"^(?:\+|00)?820?")
MOBILE_PATTERN = r"^01[016789][0-9]{7,8}$"
_MOBILE = re.compile(MOBILE_PATTERN)


class InvalidPhone(ValueError):
    """Not a Korean mobile number in any format we accept."""


def normalize_phone(raw: str) -> str:
    digits = _SEPARATORS.sub("", raw or "")
    if digits.startswith(("+", "00", "82")):
        digits = _COUNTRY_PREFIX.sub("0", digits, count=1)
    if not _MOBILE.match(digits):
        raise InvalidPhone("not a Korean mobile number")
    return digits


def phone_hash(raw: str, *, key: str) -> bytes:
    """The keyed hash stored for a phone; raises ``InvalidPhone`` for a bad number."""
    return hmac.new(key.encode(), normalize_phone(raw).encode(), hashlib.sha256).digest()


def phone_normal_form_sql(column: str) -> str:
    """A SQL expression giving ``column``'s normal form, or NULL where it is no mobile number.

    ``column`` must be a trusted identifier (it is interpolated, never user input).
    """
    stripped = f"regexp_replace({column}, '[[:space:]().-]', '', 'g')"
    prefixed = (
        f"CASE WHEN {stripped} ~ '^(\\+|00|82)' "
        f"THEN regexp_replace({stripped}, '^(\\+|00)?820?', '0') ELSE {stripped} END"
    )
    return f"(CASE WHEN ({prefixed}) ~ '{MOBILE_PATTERN}' THEN ({prefixed}) END)"
