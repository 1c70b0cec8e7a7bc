"""The signal every write that changes a customer's eligibility answer sends.

An answer shows the customer's registry row, exclusions and vouchers, so a write of any
of those changes it. The ORM's writes of those models send ``answers_changed`` by
themselves (``vouchers.eligibility.changes`` connects the model signals, and
``VoucherQuerySet.update`` sends it); a set-based statement that writes them (checkout,
issuance, expiry, the registry import) returns whom it changed and its caller sends it
with ``customers_changed``. Nobody fences the cache by hand: the eligibility app
receives the signal and fences the recorded answers once the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.dispatch import Signal

answers_changed = Signal()
"""Sent with ``campaign_id`` (or ``slug``) and ``customer_ids``, or with ``customer_range``
(``(lo, hi)``: every registry customer of the campaign in it)."""


def customers_changed(*, campaign_id: int | None = None, slug: str | None = None,
                      customer_ids: Iterable[int] = (),
                      customer_range: tuple[int, int] | None = None) -> None:
    """Records, in the current transaction, that these customers' answers change."""
    answers_changed.send(sender=None, campaign_id=campaign_id, slug=slug,
                         customer_ids=customer_ids, customer_range=customer_range)
