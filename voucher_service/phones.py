"""Korean mobile numbers: one normal form and its keyed hash.

The registry stores no phone number, only ``HMAC-SHA256(PHONE_HASH_KEY, normal form)``.
The normal form is the national 0-prefixed digit string (``01012345678``). The same rule
is written once more in SQL (``phone_without_separators_sql``, ``phone_national_sql``,
``phone_normal_form_sql``) so that a bulk import normalises and hashes millions of rows in
PostgreSQL; tests hold the two to the same answers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import reduce

# Both engines apply the same three rules, each written once here:
# 1. Separators people type are dropped: ASCII whitespace, no-break space (spreadsheets),
#    dots, dashes and brackets. Listed rather than ``\s`` / ``[[:space:]]``, on whose
#    Unicode members Python and PostgreSQL disagree.
# 2. An international prefix (+82, 0082 or 82, with or without the trunk 0 after it)
#    becomes the trunk 0.
# 3. What is left must be a whole national mobile number: 010 and the old 011, 016-019
#    prefixes, with a 7- or 8-digit subscriber number.
SEPARATORS = " \t\n\r\f\v\u00a0().-"
INTERNATIONAL_PREFIXES = ("+82", "0082", "82")
MOBILE_PREFIXES = ("010", "011", "016", "017", "018", "019")
SUBSCRIBER_DIGITS = (7, 8)
DIGITS = "0123456789"
_DROP_SEPARATORS = dict.fromkeys(map(ord, SEPARATORS))
_COUNTRY_PREFIX = re.compile(
    "^(" + "|".join(map(re.escape, INTERNATIONAL_PREFIXES)) + ")0?")
_MOBILE = re.compile(
    "(" + "|".join(MOBILE_PREFIXES) + ")[0-9]{{{},{}}}".format(*SUBSCRIBER_DIGITS))


class InvalidPhone(ValueError):
    """Not a Korean mobile number in any format we accept."""


def normalize_phone(raw: str) -> str:
    digits = _COUNTRY_PREFIX.sub("0", (raw or "").translate(_DROP_SEPARATORS), count=1)
    # fullmatch: the whole string, with no "$" to let a trailing newline through.
    if not _MOBILE.fullmatch(digits):
        raise InvalidPhone("not a Korean mobile number")
    return digits


def phone_hash(raw: str, *, key: str) -> bytes:
    """The keyed hash stored for a phone; raises ``InvalidPhone`` for a bad number."""
    return hmac.new(key.encode(), normalize_phone(raw).encode(), hashlib.sha256).digest()


# In SQL, without regular expressions: for tens of millions of rows, PostgreSQL's regular
# expression engine was half of the import's typing time, ``translate`` another sixth.
# Each step reads its input several times, so the caller computes each step's value once
# as a column (a subquery behind ``OFFSET 0``) and hands that column to the next step:
# PostgreSQL would evaluate a repeated expression again for every mention. Column names
# must be trusted identifiers (they are interpolated, never user input).

def phone_without_separators_sql(column: str) -> str:
    """Rule 1 on ``column``: one ``replace`` per separator, each a plain byte search
    (``translate`` maps every character through a multibyte-aware lookup: twice the cost)."""
    return reduce(lambda text, separator: f"replace({text}, E'\\u{ord(separator):04X}', '')",
                  SEPARATORS, column)


def phone_national_sql(stripped: str) -> str:
    """Rule 2 on ``stripped``, a column holding ``phone_without_separators_sql``'s value."""
    cases = " ".join(
        f"WHEN left({stripped}, {len(prefix)}) = '{prefix}' THEN '0' || substr({stripped}, "
        f"CASE WHEN substr({stripped}, {len(prefix) + 1}, 1) = '0' THEN {len(prefix) + 2} "
        f"ELSE {len(prefix) + 1} END)"
        for prefix in INTERNATIONAL_PREFIXES)
    return f"CASE {cases} ELSE {stripped} END"


def phone_normal_form_sql(national: str) -> str:
    """Rule 3 on ``national``, a column holding ``phone_national_sql``'s value: the normal
    form, or NULL where it is no mobile number."""
    prefixes = ", ".join(f"'{prefix}'" for prefix in MOBILE_PREFIXES)
    lengths = ", ".join(str(3 + digits) for digits in SUBSCRIBER_DIGITS)
    return (f"CASE WHEN length({national}) IN ({lengths}) AND left({national}, 3) IN ({prefixes}) "
            f"AND ltrim({national}, '{DIGITS}') = '' THEN {national} END")
