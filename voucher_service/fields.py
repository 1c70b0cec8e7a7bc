"""Strict serializer fields: money is an integer number of won, never a string or a float."""

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
