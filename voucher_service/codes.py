"""Voucher codes: a keyed permutation of the voucher's bigint id, written in Crockford base32.

Why a permutation rather than random codes:

* Unique by construction. A permutation of the 64-bit integers is a bijection, so two
  distinct ids can never share a code. No retry loop on collision, and no column or
  unique index of its own for the code: a code is looked up by decoding it back to the
  primary key, which already has its index.
* Unguessable. The permutation is an 8-round Feistel network over two 32-bit halves whose
  round function is keyed BLAKE2b. Without the secret key an observer who holds some codes
  (even knowing which ids they belong to) cannot compute the code of another id nor walk
  the sequence of ids to enumerate codes; a random guess hits an issued code with
  probability about (issued codes) / 2**64.

Four rounds are the Luby-Rackoff minimum for a strong pseudo-random permutation, but with
32-bit halves that bound only holds to about 2**16 known pairs. With six or more rounds
the generic bounds (Patarin) approach 2**32 pairs, far more codes than we will ever hand
out; eight rounds, as in NIST FF3-1 (format-preserving encryption over small domains), add
a margin for about twice the cost of four.

Format: the permuted value as 13 Crockford base32 symbols (65 bits, so the first symbol is
always 0-F), then one Crockford check symbol (value mod 37, from ``0-9A-Z`` minus ``ILOU``
plus ``*~$=U``): 14 characters. The check symbol is verified without the key, so a typo is
rejected before any lookup; because 37 is prime and larger than 32, it catches every
single-symbol substitution and every transposition of two adjacent symbols.

Decoding accepts lower case, dashes and whitespace, and Crockford's aliases (I and L read
as 1, O as 0). ``format_voucher_code`` groups a code in blocks of four for display.

The base32 encoding is written here rather than taken from PyPI: ``base32-crockford``, the
only widely used package, has had no release since 2015 (Python 2 era code, no fixed-width
output, no whitespace handling), and the newer packages are single-release projects with
no track record. Fixed-width Crockford base32 of a 64-bit integer is a few lines.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

__all__ = [
    "InvalidVoucherCode",
    "code_last4",
    "decode_voucher_code",
    "encode_voucher_code",
    "format_voucher_code",
    "normalize_voucher_code",
]

CODE_LENGTH = 14
"""Length of a normalised code: 13 data symbols and one check symbol."""

_ROUNDS = 8
_HALF_MASK = 0xFFFF_FFFF
_ID_LIMIT = 2**64
_PERSON = b"voucher-code-v1"  # BLAKE2b personalisation: a key reused elsewhere gives other outputs
_MIN_KEY_BYTES = 16
_MAX_KEY_BYTES = 64  # BLAKE2b's largest key

_SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CHECK_SYMBOLS = _SYMBOLS + "*~$=U"
_DATA_LENGTH = CODE_LENGTH - 1
# Every 10-bit value as its two symbols: half as many lookups as one symbol at a time.
_SYMBOL_PAIRS = tuple(high + low for high in _SYMBOLS for low in _SYMBOLS)
# Crockford symbol k -> Python's base-32 digit k, so int(..., 32) does the decoding in C.
_TO_INT_DIGITS = str.maketrans(_SYMBOLS, "0123456789ABCDEFGHIJKLMNOPQRSTUV")
_ALIASES = str.maketrans("ILO", "110", "-")
_CODE_RE = re.compile(f"[{_SYMBOLS}]{{{_DATA_LENGTH}}}[{re.escape(_CHECK_SYMBOLS)}]")


class InvalidVoucherCode(ValueError):
    """The string is not a well-formed voucher code (length, alphabet or check symbol)."""


@lru_cache(maxsize=16)
def _round_states(key: bytes) -> tuple[hashlib.blake2b, ...]:
    """One keyed BLAKE2b state per round, with the round number already absorbed.

    Copying a prepared state is cheaper than keying BLAKE2b again for every round.
    """
    if not isinstance(key, bytes) or not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValueError(f"voucher code key must be {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes")
    return tuple(
        hashlib.blake2b(bytes([n]), key=key, digest_size=4, person=_PERSON) for n in range(_ROUNDS)
    )


def _permute(value: int, states: tuple[hashlib.blake2b, ...]) -> int:
    # The round function F(half) = BLAKE2b_key(round || half) is inlined here and in
    # _unpermute: a function call per round costs about 7% of an encode.
    left, right = value >> 32, value & _HALF_MASK
    for state in states:
        h = state.copy()
        h.update(right.to_bytes(4, "big"))
        left, right = right, left ^ int.from_bytes(h.digest(), "big")
    return (left << 32) | right


def _unpermute(value: int, states: tuple[hashlib.blake2b, ...]) -> int:
    left, right = value >> 32, value & _HALF_MASK
    for state in reversed(states):
        h = state.copy()
        h.update(left.to_bytes(4, "big"))
        left, right = right ^ int.from_bytes(h.digest(), "big"), left
    return (left << 32) | right


def _code_for(value: int) -> str:
    """13 data symbols (one for the top 5 bits, then six pairs of 10 bits) and the check."""
    pairs = _SYMBOL_PAIRS
    return (
        _SYMBOLS[value >> 60]
        + pairs[(value >> 50) & 1023]
        + pairs[(value >> 40) & 1023]
        + pairs[(value >> 30) & 1023]
        + pairs[(value >> 20) & 1023]
        + pairs[(value >> 10) & 1023]
        + pairs[value & 1023]
        + _CHECK_SYMBOLS[value % 37]
    )


def encode_voucher_code(voucher_id: int, key: bytes) -> str:
    """The 14-character code of ``voucher_id`` (0 <= id < 2**64) under ``key`` (16-64 bytes)."""
    if not 0 <= voucher_id < _ID_LIMIT:
        raise ValueError("voucher id must be in [0, 2**64)")
    return _code_for(_permute(voucher_id, _round_states(key)))


def _split_checked(code: str) -> tuple[str, int]:
    """The normalised code and the value of its data symbols; raises on a malformed code."""
    if not code.isascii():
        raise InvalidVoucherCode("voucher code has a character outside the Crockford alphabet")
    normalised = "".join(code.upper().split()).translate(_ALIASES)
    if len(normalised) != CODE_LENGTH:
        raise InvalidVoucherCode(f"voucher code must have {CODE_LENGTH} symbols")
    if not _CODE_RE.fullmatch(normalised):
        raise InvalidVoucherCode("voucher code has a character outside the Crockford alphabet")
    value = int(normalised[:_DATA_LENGTH].translate(_TO_INT_DIGITS), 32)
    if _CHECK_SYMBOLS[value % 37] != normalised[-1]:
        raise InvalidVoucherCode("voucher code check symbol does not match")
    if value >= _ID_LIMIT:
        raise InvalidVoucherCode("voucher code is out of range")
    return normalised, value


def normalize_voucher_code(code: str) -> str:
    """The canonical 14-character form of ``code`` (upper case, no separators, no aliases).

    Checks the form and the check symbol only (no key is needed for that); raises
    ``InvalidVoucherCode`` on a malformed code.
    """
    return _split_checked(code)[0]


def decode_voucher_code(code: str, key: bytes) -> int:
    """The voucher id behind ``code``; raises ``InvalidVoucherCode`` on a malformed code.

    A well-formed code always decodes to some id in [0, 2**64): whether that id exists
    is for the caller's lookup to say.
    """
    return _unpermute(_split_checked(code)[1], _round_states(key))


def format_voucher_code(code: str) -> str:
    """``code`` for display: normalised and grouped in blocks of four, ``XXXX-XXXX-XXXX-XX``."""
    normalised = normalize_voucher_code(code)
    return "-".join(normalised[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def code_last4(code: str) -> str:
    """The last four characters of the normalised code (check symbol included)."""
    return normalize_voucher_code(code)[-4:]
