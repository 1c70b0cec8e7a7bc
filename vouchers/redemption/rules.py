"""What checkout refuses: one table of rules, from which both the checkout statement's
``CASE`` and the problem the client gets are built.

Each rule is a code, a SQL condition over the locked voucher row (its columns by name)
and the order's parameters (``%(customer_id)s``, ``%(now)s``, ``%(merchant_category)s``,
``%(order_total_krw)s``, ``%(amount_krw)s``), and the problem for a voucher that breaks
it. The first rule broken, in table order, is the refusal. Adding a rule is one entry
here and a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voucher_service.problems import ProblemError
from vouchers.models import Voucher
from vouchers.models.expiry import past_expiry


def _conflict(code: str, detail: str, **extra) -> ProblemError:
    return ProblemError(status=409, code=code, detail=detail, **extra)


@dataclass(frozen=True)
class Rule:
    code: str
    condition: str
    problem: Callable[[Voucher], ProblemError]


RULES: tuple[Rule, ...] = (
    # Another customer's voucher is answered as if it did not exist.
    Rule("voucher_not_found", "customer_id <> %(customer_id)s",
         lambda v: ProblemError(status=404, code="voucher_not_found",
                                detail="No such voucher.")),
    Rule("voucher_expired", past_expiry("%(now)s"),
         lambda v: _conflict("voucher_expired", "The voucher has expired.")),
    Rule("voucher_not_yet_valid", "valid_from > %(now)s",
         lambda v: _conflict("voucher_not_yet_valid",
                             f"The voucher can be used from {v.valid_from.isoformat()}.",
                             valid_from=v.valid_from.isoformat())),
    Rule("voucher_not_active", "status NOT IN ('active', 'exhausted')",
         lambda v: _conflict("voucher_not_active", f"The voucher is {v.status}.",
                             voucher_status=v.status)),
    Rule("category_mismatch", "category NOT IN ('all', %(merchant_category)s)",
         lambda v: _conflict("category_mismatch",
                             f"The voucher is for {v.category} orders only.",
                             voucher_category=v.category)),
    Rule("minimum_order_not_met", "min_order_krw > %(order_total_krw)s",
         lambda v: _conflict("minimum_order_not_met",
                             f"The voucher needs an order of at least {v.min_order_krw} won.",
                             min_order_krw=v.min_order_krw)),
    # An exhausted voucher (balance 0) lands here.
    Rule("insufficient_balance", "balance_krw < %(amount_krw)s",
         lambda v: _conflict("insufficient_balance", "The voucher's balance is too low.",
                             balance_krw=v.balance_krw)),
)

_BY_CODE = {rule.code: rule for rule in RULES}

REFUSAL_SQL = "CASE " + " ".join(
    f"WHEN {rule.condition} THEN '{rule.code}'" for rule in RULES) + " END"
"""The code of the first rule the row breaks, or NULL: the checkout statement's refusal."""


def refusal(code: str, voucher: Voucher) -> ProblemError:
    """The problem for the rule ``code`` that ``voucher`` (as locked) broke."""
    return _BY_CODE[code].problem(voucher)
