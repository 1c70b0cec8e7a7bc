"""What to do about each kind of data the leak exposed: the one place these sentences live.

The eligibility answer and support's customer lookup list one per exposed kind. Plain
sentences: no link, web address or phone number, as in every message of ours (phishing
texts offering compensation for this leak were common); tests/eligibility/test_exposed.py
holds them to it.
"""

from __future__ import annotations

from vouchers.models import ExposedKind

ADVICE: dict[str, str] = {
    ExposedKind.EMAIL: (
        "Be wary of e-mails about this leak or about compensation: we never send links or "
        "attachments and never ask for a password, so open our app yourself instead."
    ),
    ExposedKind.ENTRANCE_CODE: (
        "Change your building's entrance code, or ask your building manager to change it."
    ),
    ExposedKind.NAME: (
        "A message that knows your name is not proof that it comes from us: check anything "
        "about this leak in our app."
    ),
    ExposedKind.ORDER_HISTORY: (
        "Messages that mention your past orders may be fake: to check an order or a refund, "
        "open our app yourself rather than replying."
    ),
    ExposedKind.PHONE: (
        "Be wary of texts and calls about compensation: we never send links and never ask "
        "for codes, passwords or card numbers by phone."
    ),
    ExposedKind.SHIPPING_ADDRESS: (
        "Be wary of delivery messages you did not expect and of visitors who say they come "
        "from us; the addresses in your address book were exposed too."
    ),
}


def advice(kinds: tuple[str, ...]) -> list[str]:
    """One sentence per kind, in the kinds' order."""
    return [ADVICE[kind] for kind in kinds]
