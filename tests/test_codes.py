"""Voucher codes: round trip, uniqueness, typo detection, lenient input, strict rejection.

Plain functions with no database and no Django: the codes module is pure Python.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from voucher_service.codes import (
    CODE_LENGTH,
    InvalidVoucherCode,
    code_last4,
    decode_voucher_code,
    encode_voucher_code,
    format_voucher_code,
    normalize_voucher_code,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_SYMBOLS = SYMBOLS + "*~$=U"

ids = st.integers(min_value=0, max_value=2**64 - 1)
keys = st.binary(min_size=16, max_size=64)
# No example database: the tests leave no files behind.
quick = settings(database=None)
thorough = settings(database=None, max_examples=500)


def crockford_value(symbols: str) -> int:
    """Reference decoding of canonical Crockford symbols, one digit at a time."""
    value = 0
    for symbol in symbols:
        value = value * 32 + SYMBOLS.index(symbol)
    return value


@thorough
@given(voucher_id=ids, key=keys)
@example(voucher_id=0, key=KEY)
@example(voucher_id=1, key=KEY)
@example(voucher_id=2**63 - 1, key=KEY)
@example(voucher_id=2**64 - 1, key=KEY)
def test_decode_inverts_encode(voucher_id: int, key: bytes) -> None:
    assert decode_voucher_code(encode_voucher_code(voucher_id, key), key) == voucher_id


@quick
@given(voucher_id=ids)
def test_code_is_13_crockford_symbols_and_a_mod_37_check(voucher_id: int) -> None:
    code = encode_voucher_code(voucher_id, KEY)
    assert len(code) == CODE_LENGTH == 14
    assert all(symbol in SYMBOLS for symbol in code[:13])
    assert code[13] == CHECK_SYMBOLS[crockford_value(code[:13]) % 37]
    assert normalize_voucher_code(code) == code


def test_known_codes_do_not_change() -> None:
    """Issued codes must keep decoding: any change to the permutation or format fails here."""
    assert encode_voucher_code(0, KEY) == "D6YJBSCG9A1DVB"
    assert encode_voucher_code(1, KEY) == "C7MJ0KP109YK4F"
    assert encode_voucher_code(2, KEY) == "357DG6BYNAVZZG"
    assert encode_voucher_code(2**63 - 1, KEY) == "0KKBXJKJKB581*"
    assert encode_voucher_code(2**64 - 1, KEY) == "4EV4JFAX1B3TRP"


def test_consecutive_ids_have_distinct_codes() -> None:
    start = 10_000_000
    codes = {encode_voucher_code(voucher_id, KEY) for voucher_id in range(start, start + 100_000)}
    assert len(codes) == 100_000


@quick
@given(
    voucher_id=ids,
    position=st.integers(min_value=0, max_value=CODE_LENGTH - 1),
    replacement=st.sampled_from(CHECK_SYMBOLS),
)
def test_single_symbol_change_is_detected(voucher_id: int, position: int, replacement: str) -> None:
    code = encode_voucher_code(voucher_id, KEY)
    if code[position] == replacement:
        replacement = CHECK_SYMBOLS[(CHECK_SYMBOLS.index(replacement) + 1) % 37]
    typo = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(InvalidVoucherCode):
        decode_voucher_code(typo, KEY)


@quick
@given(voucher_id=ids, position=st.integers(min_value=0, max_value=CODE_LENGTH - 2))
def test_adjacent_transposition_is_detected(voucher_id: int, position: int) -> None:
    code = encode_voucher_code(voucher_id, KEY)
    first, second = code[position], code[position + 1]
    assume(first != second)
    swapped = code[:position] + second + first + code[position + 2 :]
    with pytest.raises(InvalidVoucherCode):
        decode_voucher_code(swapped, KEY)


def test_every_adjacent_transposition_of_some_codes_is_detected() -> None:
    """Exhaustive over positions, including the check symbol swapped with the last data one."""
    for voucher_id in range(1, 200):
        code = encode_voucher_code(voucher_id, KEY)
        for position in range(CODE_LENGTH - 1):
            swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
            if swapped != code:
                with pytest.raises(InvalidVoucherCode):
                    decode_voucher_code(swapped, KEY)


@quick
@given(voucher_id=ids, key=keys, other_key=keys)
def test_different_keys_give_different_codes(voucher_id: int, key: bytes, other_key: bytes) -> None:
    assume(key != other_key)
    assert encode_voucher_code(voucher_id, key) != encode_voucher_code(voucher_id, other_key)


def test_a_code_under_one_key_does_not_decode_to_its_id_under_another() -> None:
    for voucher_id in range(1, 1_000):
        code = encode_voucher_code(voucher_id, KEY)
        assert code != encode_voucher_code(voucher_id, OTHER_KEY)
        assert decode_voucher_code(code, OTHER_KEY) != voucher_id


@st.composite
def sloppy_renderings(draw: st.DrawFn, code: str) -> str:
    """``code`` as a person might type it: any case, Crockford aliases, dashes and spaces."""
    aliases = {"0": ["0", "O", "o"], "1": ["1", "I", "i", "L", "l"]}
    parts = []
    for symbol in code:
        parts.append(draw(st.sampled_from([*aliases.get(symbol, []), symbol, symbol.lower()])))
        parts.append(draw(st.sampled_from(["", "", "-", " ", "\t"])))
    return draw(st.sampled_from(["", " "])) + "".join(parts)


@quick
@given(voucher_id=ids, data=st.data())
def test_lower_case_separators_and_aliases_decode(voucher_id: int, data: st.DataObject) -> None:
    code = encode_voucher_code(voucher_id, KEY)
    typed = data.draw(sloppy_renderings(code))
    assert decode_voucher_code(typed, KEY) == voucher_id
    assert normalize_voucher_code(typed) == code
    assert code_last4(typed) == code[-4:]


def test_aliases_and_formatting_by_example() -> None:
    code = encode_voucher_code(2, KEY)
    assert code == "357DG6BYNAVZZG"
    assert decode_voucher_code(" 357d-g6by-navz-zg ", KEY) == 2
    code = encode_voucher_code(1, KEY)
    assert code == "C7MJ0KP109YK4F"
    assert decode_voucher_code("c7mjOkpIO9yk4f", KEY) == 1
    assert decode_voucher_code("C7MJ okpL o9YK 4F", KEY) == 1


def test_format_voucher_code_groups_in_fours() -> None:
    assert format_voucher_code("357DG6BYNAVZZG") == "357D-G6BY-NAVZ-ZG"
    assert format_voucher_code("357d g6by navz zg") == "357D-G6BY-NAVZ-ZG"
    assert decode_voucher_code(format_voucher_code("357DG6BYNAVZZG"), KEY) == 2


def test_code_last4_is_the_tail_of_the_normalised_code() -> None:
    assert code_last4("0KKBXJKJKB581*") == "581*"
    assert code_last4("0kkb-xjkj-kb58-i*") == "581*"


def _with_check(data: str) -> str:
    return data + CHECK_SYMBOLS[crockford_value(data) % 37]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("357DG6BYNAVZZ", id="too-short"),
        pytest.param("357DG6BYNAVZZGG", id="too-long"),
        pytest.param("357D-G6BY-NAVZ", id="too-short-with-dashes"),
        pytest.param("357DG6BYNAVZZH", id="wrong-check-symbol"),
        pytest.param("357DG6BYNAVZZ*", id="wrong-check-from-the-extra-five"),
        pytest.param("U57DG6BYNAVZZG", id="check-only-symbol-in-data"),
        pytest.param("357DG6BY!AVZZG", id="punctuation"),
        pytest.param("357DG6BY_AVZZG", id="underscore"),
        pytest.param("357DG6BYNAVZZ\u00e9", id="non-ascii"),
        pytest.param("357DG6BYNAVZ\u0131G", id="dotless-i"),
        pytest.param(_with_check("G000000000000"), id="value-2-to-the-64"),
        pytest.param(_with_check("ZZZZZZZZZZZZZ"), id="largest-13-symbol-value"),
    ],
)
def test_malformed_codes_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidVoucherCode):
        decode_voucher_code(bad, KEY)
    with pytest.raises(InvalidVoucherCode):
        normalize_voucher_code(bad)
    with pytest.raises(InvalidVoucherCode):
        code_last4(bad)
    with pytest.raises(InvalidVoucherCode):
        format_voucher_code(bad)


def test_invalid_voucher_code_is_a_value_error() -> None:
    assert issubclass(InvalidVoucherCode, ValueError)


@pytest.mark.parametrize("voucher_id", [-1, 2**64])
def test_ids_outside_64_bits_are_refused(voucher_id: int) -> None:
    with pytest.raises(ValueError, match="voucher id"):
        encode_voucher_code(voucher_id, KEY)


@pytest.mark.parametrize("key", [b"", b"k" * 15, b"k" * 65])
def test_keys_of_the_wrong_size_are_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="key"):
        encode_voucher_code(1, key)
    with pytest.raises(ValueError, match="key"):
        decode_voucher_code("357DG6BYNAVZZG", key)
