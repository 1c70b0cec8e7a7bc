"""The double-entry ledger.

Postings are signed won amounts, debit positive. The database enforces the rules:
each INSERT statement into postings must balance per ledger transaction (a statement
trigger), postings and transactions refuse UPDATE and DELETE, and the same trigger keeps
``LedgerBalance`` totals per (campaign, category, account) in sharded slots so that
concurrent redemptions do not queue on one row.

Issuance posts one summary posting per chunk, category and account (no voucher id); every
later movement posts per voucher on the holding accounts (``liability``, ``unclaimed``), so
a voucher's balance is its amount minus the sum of its postings on those accounts.
"""

from django.db import models
from django.db.models import Q


class Account(models.TextChoices):
    EXPENSE = "expense"  # compensation expense: debited by issuance
    LIABILITY = "liability"  # vouchers held by a customer who can spend them
    UNCLAIMED = "unclaimed"  # vouchers of closed accounts, until claimed
    AUTHORIZED = "authorized"  # holds awaiting capture or void
    REDEEMED = "redeemed"  # captured spending (credited gross)
    REFUNDED = "refunded"  # refunds of captured spending (debited)
    FORFEITED = "forfeited"  # what a single-use voucher's order did not use
    EXPIRED = "expired"  # breakage at expiry
    REVOKED = "revoked"  # vouchers withdrawn from invalid accounts


VOUCHER_HOLDING_ACCOUNTS = (Account.LIABILITY, Account.UNCLAIMED)


class Reason(models.TextChoices):
    ISSUANCE = "issuance"
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    FORFEIT = "forfeit"
    EXPIRY = "expiry"
    REVOCATION = "revocation"
    CLAIM_TRANSFER = "claim_transfer"
    MANUAL_ADJUSTMENT = "manual_adjustment"


class LedgerTransaction(models.Model):
    campaign = models.ForeignKey("vouchers.Campaign", on_delete=models.PROTECT)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    voucher_id = models.BigIntegerField(null=True, blank=True)
    redemption_id = models.UUIDField(null=True, blank=True)
    run_id = models.UUIDField(null=True, blank=True)
    chunk_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(reason__in=Reason.values), name="ledger_tx_reason_valid"
            ),
            models.UniqueConstraint(
                fields=["chunk_id", "reason"],
                condition=Q(chunk_id__isnull=False),
                name="ledger_tx_once_per_chunk",
            ),
        ]
        indexes = [
            models.Index(fields=["redemption_id"], condition=Q(redemption_id__isnull=False),
                         name="ledger_tx_redemption"),
        ]


class LedgerPosting(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT)
    campaign_id = models.BigIntegerField()
    category = models.SlugField(max_length=32, db_index=False)
    account = models.CharField(max_length=12, choices=Account.choices)
    voucher_id = models.BigIntegerField(null=True, blank=True)
    amount_krw = models.BigIntegerField()
    # On issuance's expense posting: how many vouchers it issues.
    voucher_count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(account__in=Account.values), name="ledger_posting_account_valid"
            ),
            models.CheckConstraint(condition=~Q(amount_krw=0), name="ledger_posting_nonzero"),
        ]
        indexes = [
            models.Index(fields=["voucher_id"], condition=Q(voucher_id__isnull=False),
                         name="ledger_posting_voucher"),
        ]


class LedgerBalance(models.Model):
    """Running totals per account, maintained by the posting trigger; read by finance."""

    SLOTS = 16

    campaign_id = models.BigIntegerField()
    category = models.SlugField(max_length=32, db_index=False)
    account = models.CharField(max_length=12, choices=Account.choices)
    slot = models.SmallIntegerField()
    balance_krw = models.BigIntegerField(default=0)
    voucher_count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign_id", "category", "account", "slot"], name="ledger_balance_key"
            ),
        ]


class LedgerDaily(models.Model):
    """Per-day movement per account (Asia/Seoul days), kept by the same posting trigger in
    slots like ``LedgerBalance``; the dashboard's charts read it instead of the postings."""

    campaign_id = models.BigIntegerField()
    account = models.CharField(max_length=12, choices=Account.choices)
    day = models.DateField()
    slot = models.SmallIntegerField()
    amount_krw = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign_id", "account", "day", "slot"], name="ledger_daily_key"
            ),
        ]
