"""The phone normal form, written in Python and in SQL, gives the same answer for any input.

The bulk import normalises and hashes in PostgreSQL (``phone_normal_form_sql`` and the
steps before it, and pgcrypto's ``hmac``); the claim flow does it in Python
(``normalize_phone``, ``phone_hash``). A customer can claim only if both agree, so
hypothesis throws every common way of writing a Korean mobile number, and junk, at both.
"""

from __future__ import annotations

import pytest
from django.db import connection
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voucher_service.phones import (
    InvalidPhone,
    normalize_phone,
    phone_hash,
    phone_national_sql,
    phone_normal_form_sql,
    phone_without_separators_sql,
)

pytestmark = pytest.mark.django_db
KEY = "test-phone-key"


@st.composite
def mobile_numbers(draw) -> str:
    """A national normal form: 010 with 8 subscriber digits, old 011/016-019 with 7 or 8."""
    prefix = draw(st.sampled_from(["010", "011", "016", "017", "018", "019"]))
    length = 8 if prefix == "010" else draw(st.sampled_from([7, 8]))
    return prefix + draw(st.text("0123456789", min_size=length, max_size=length))


def _groups(national: str) -> tuple[str, str, str]:
    return national[:3], national[3:-4], national[-4:]


FORMATS = [
    lambda n: n,
    lambda n: "-".join(_groups(n)),
    lambda n: ".".join(_groups(n)),
    lambda n: " ".join(_groups(n)),
    lambda n: "({}) {}-{}".format(*_groups(n)),
    lambda n: "+82 {} {} {}".format(n[1:3], *_groups(n)[1:]),
    lambda n: "+82-{}-{}-{}".format(n[1:3], *_groups(n)[1:]),
    lambda n: "+82" + n[1:],
    lambda n: "82 {} {} {}".format(n[1:3], *_groups(n)[1:]),
    lambda n: "0082-" + n[1:],
    lambda n: "+82 (0){}-{}-{}".format(n[1:3], *_groups(n)[1:]),
    lambda n: f"  {n}\t",
]


# As the import composes them: each step's value computed once, behind a fence.
STEPS = (f"(SELECT {phone_national_sql('s')} AS n FROM "
         f"(SELECT {phone_without_separators_sql('p')} AS s "
         "FROM (SELECT %(raw)s::text AS p) t OFFSET 0) u OFFSET 0) v")


def sql_normal_form(raw: str | None) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {phone_normal_form_sql('n')} FROM {STEPS}", {"raw": raw})
        return cursor.fetchone()[0]


def python_normal_form(raw: str) -> str | None:
    try:
        return normalize_phone(raw)
    except InvalidPhone:
        return None


@settings(max_examples=150, deadline=None)
@given(national=mobile_numbers(), fmt=st.sampled_from(FORMATS))
def test_every_common_format_normalises_to_the_national_digits(national, fmt):
    written = fmt(national)
    assert python_normal_form(written) == national
    assert sql_normal_form(written) == national


# Junk: digits and separators in any mix, and any printable text (PostgreSQL text holds no
# NUL and no lone surrogate).
_JUNK_ALPHABET = st.sampled_from(list("0123456789+-.() \t\u00a0\u2003\u2010x82"))
junk = st.one_of(
    st.text(_JUNK_ALPHABET, max_size=20),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
            max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(raw=junk)
@example("01012345678\n")
@example("+010-1234-5678")
@example("8201012345678")
@example("010-1234-567")
@example("0101234567")
@example("012-345-6789")
@example("\u00a001012345678")
@example("")
def test_python_and_sql_agree_on_anything(raw):
    assert python_normal_form(raw) == sql_normal_form(raw)


def test_sql_gives_null_for_null():
    assert sql_normal_form(None) is None


@settings(max_examples=30, deadline=None)
@given(national=mobile_numbers(), fmt=st.sampled_from(FORMATS))
def test_pgcrypto_hmac_of_the_sql_form_is_the_python_hash(national, fmt):
    written = fmt(national)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT hmac({phone_normal_form_sql('n')}, %(key)s, 'sha256') "
                       f"FROM {STEPS}", {"key": KEY, "raw": written})
        in_sql = bytes(cursor.fetchone()[0])
    assert in_sql == phone_hash(written, key=KEY) == phone_hash(national, key=KEY)


@pytest.mark.parametrize("raw", ["", "02-123-4567", "010-1234-56789", "phone", "+1 010 1234 5678"])
def test_phone_hash_refuses_what_is_not_a_mobile_number(raw):
    with pytest.raises(InvalidPhone):
        phone_hash(raw, key=KEY)
