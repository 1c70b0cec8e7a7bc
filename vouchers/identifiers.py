"""Public voucher ids and voucher codes, both keyed permutations of the database id.

The id in URLs (``vch_...``) and the code printed for the customer are different
permutations (different keys), so knowing one gives nothing about the other, and neither
needs a column or an index of its own: both decode back to the primary key.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache

from django.conf import settings

from voucher_service.codes import (
    InvalidVoucherCode,
    code_last4,
    decode_voucher_code,
    encode_voucher_code,
)

PUBLIC_ID_PREFIX = "vch_"


@cache
def _key(purpose: str) -> bytes:
    return hmac.new(settings.VOUCHER_CODE_KEY.encode(), purpose.encode(), hashlib.sha256).digest()


def voucher_code(voucher_id: int) -> str:
    return encode_voucher_code(voucher_id, _key("code"))


def voucher_code_last4(voucher_id: int) -> str:
    return code_last4(voucher_code(voucher_id))


def public_voucher_id(voucher_id: int) -> str:
    return PUBLIC_ID_PREFIX + encode_voucher_code(voucher_id, _key("public-id"))


def voucher_id_from_public(public_id: str) -> int | None:
    """The primary key behind a public id, or None when it is not one of ours."""
    if not public_id.startswith(PUBLIC_ID_PREFIX):
        return None
    try:
        voucher_id = decode_voucher_code(public_id[len(PUBLIC_ID_PREFIX):], _key("public-id"))
    except InvalidVoucherCode:
        return None
    return voucher_id if 0 < voucher_id < 2**63 else None
