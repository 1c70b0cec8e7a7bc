"""Korean mobile numbers: one normal form and its keyed hash.

The registry stores no phone number, only ``HMAC-SHA256(PHONE_HASH_KEY, normal form)``.
The normal form is the national 0-prefixed digit string (``01012345678``). The same rule
is written once more in SQL (``phone_normal_form_sql``) so that a bulk import normalises
and hashes millions of rows in PostgreSQL; tests hold the two to the same answers.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# Both engines apply the same three rules, each written once here:
# 1. Separators people type are dropped: ASCII whitespace, no-break space (spreadsheets),
#    dots, dashes and brackets. Listed rather than ``\s`` / ``[[:space:]]``, on whose
#    Unicode members Python and PostgreSQL disagree.
# 2. An international prefix (+82, 82, 0082, with or without the trunk 0 after it) becomes
#    the trunk 0. The pattern can only match a string starting with +, 00 or 82.
# 3. What is left must be a whole national mobile number: 010 and the old 011, 016-019
#    prefixes, with a 7- or 8-digit subscriber number.
SEPARATORS = " \t\n\r\f\v\u00a0().-"
COUNTRY_PREFIX_PATTERN = r"^(\+|00)?820?"
MOBILE_PATTERN = r"^01[016789][0-9]{7,8}$"
_DROP_SEPARATORS = dict.fromkeys(map(ord, SEPARATORS))
_COUNTRY_PREFIX = re.compile(COUNTRY_PREFIX_PATTERN)
_MOBILE = re.compile(MOBILE_PATTERN)


class InvalidPhone(ValueError):
    """Not a Korean mobile number in any format we accept."""


def normalize_phone(raw: str) -> str:
    digits = _COUNTRY_PREFIX.sub("0", (raw or "").translate(_DROP_SEPARATORS), count=1)
    if not _MOBILE.fullmatch(digits):
        raise InvalidPhone("not a Korean mobile number")
    return digits


def phone_hash(raw: str, *, key: str) -> bytes:
    """The keyed hash stored for a phone; raises ``InvalidPhone`` for a bad number."""
    return hmac.new(key.encode(), normalize_phone(raw).encode(), hashlib.sha256).digest()


def phone_normal_form_sql(column: str) -> str:
    """A SQL expression giving ``column``'s normal form, or NULL where it is no mobile number.

    Built for tens of millions of rows: ``translate`` drops the separators (a character
    map, cheaper than a regular expression), each function runs once per row (a repeated
    subexpression would be evaluated again), and ``substring`` gives NULL when the pattern
    does not match. ``column`` must be a trusted identifier (it is interpolated, never
    user input).
    """
    separators = "".join(f"\\u{ord(c):04X}" for c in SEPARATORS)
    stripped = f"translate({column}, E'{separators}', '')"
    national = f"regexp_replace({stripped}, '{COUNTRY_PREFIX_PATTERN}', '0')"
    return f"substring({national} from '{MOBILE_PATTERN}')"
