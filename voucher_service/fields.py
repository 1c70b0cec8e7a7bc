"""Strict serializer fields: money is an integer number of won, never a string or a float."""

from datetime import UTC, datetime

from django.utils import timezone
from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that refuses "12", 12.0 and booleans instead of coercing them."""

    default_error_messages = {"not_integer": "Must be a JSON integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_integer")
        return super().to_internal_value(data)


class KrwField(StrictIntegerField):
    """A positive amount of won."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 10**12)
        super().__init__(**kwargs)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: "true", 1 and "yes" are refused, not coerced."""

    default_error_messages = {"not_boolean": "Must be a JSON boolean."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("not_boolean")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string only: numbers are refused, not turned into strings."""

    default_error_messages = {"not_string": "Must be a JSON string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_string")
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with its offset, in this century: a time without an offset is
    refused, not guessed, and so is one far off (its local offset in Asia/Seoul could be
    the pre-1908 +08:27:52, which RFC 3339 cannot write back)."""

    EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
    LATEST = datetime(2100, 1, 1, tzinfo=UTC)
    default_error_messages = {
        "naive": "Must be ISO 8601 with an offset (Z or +09:00).",
        "out_of_range": "Must be between 2000 and 2100.",
    }

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        if not self.EARLIEST <= value < self.LATEST:
            self.fail("out_of_range")
        return super().enforce_timezone(value)
