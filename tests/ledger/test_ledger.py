import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vouchers.issuance.chunk import issue_chunk
from vouchers.ledger.posting import move, post_transaction
from vouchers.ledger.verification import verify_ledger
from vouchers.models import Account, LedgerBalance, LedgerPosting, Reason, Voucher


@pytest.fixture
def issued(make_campaign, load_registry):
    campaign = make_campaign(components=[
        {"category": "all", "amount_krw": 5_000, "single_use": True},
        {"category": "travel", "amount_krw": 20_000, "single_use": True},
    ])
    load_registry(campaign, {1: "active", 2: "dormant", 3: "closed", 4: "active"})
    result = issue_chunk(campaign_id=campaign.pk, lo=1, hi=100, run_id=None, chunk_id=1)
    return campaign, result


def _sql(sql: str, params: list | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def _balances(campaign_id: int) -> dict[str, int]:
    rows = (
        LedgerBalance.objects.filter(campaign_id=campaign_id)
        .values("account").annotate(total=Sum("balance_krw"))
    )
    return {r["account"]: r["total"] for r in rows}


@pytest.mark.django_db
def test_chunk_issuance_posts_summary_postings(issued):
    campaign, result = issued
    assert result == 8
    assert Voucher.objects.values("registry_customer_id").distinct().count() == 4
    assert LedgerPosting.objects.filter(voucher_id__isnull=False).count() == 0
    assert _balances(campaign.pk) == {"expense": 100_000, "liability": -75_000,
                                      "unclaimed": -25_000}
    assert set(Voucher.objects.filter(customer_id=3).values_list("status", flat=True)) == {
        "unclaimed"}
    assert verify_ledger(campaign_id=campaign.pk).ok


@pytest.mark.django_db
def test_chunk_issuance_is_idempotent(issued):
    campaign, _ = issued
    again = issue_chunk(campaign_id=campaign.pk, lo=1, hi=100, run_id=None, chunk_id=2)
    assert again == 0
    assert Voucher.objects.count() == 8
    assert _balances(campaign.pk)["expense"] == 100_000


@pytest.mark.django_db
@pytest.mark.parametrize("table", ["vouchers_ledgertransaction", "vouchers_ledgerposting"])
@pytest.mark.parametrize("verb", ["UPDATE {t} SET campaign_id = campaign_id", "DELETE FROM {t}"])
def test_ledger_tables_refuse_update_and_delete(issued, table, verb):
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(verb.format(t=table))


@pytest.mark.django_db
def test_database_refuses_an_unbalanced_insert(issued):
    campaign, _ = issued
    tx_id = LedgerPosting.objects.first().transaction_id
    with pytest.raises(IntegrityError, match="does not balance"):
        _sql(
            "INSERT INTO vouchers_ledgerposting (transaction_id, campaign_id, category, account,"
            " amount_krw, voucher_count) VALUES (%s, %s, 'all', 'expense', 1, 0)",
            [tx_id, campaign.pk],
        )


@pytest.mark.django_db
def test_post_transaction_refuses_a_negative_or_empty_move(issued):
    """A move is balanced by construction; its amount must be positive (a negative one
    would swap debit and credit behind the caller's back) and there must be one."""
    campaign, _ = issued
    with pytest.raises(ValueError, match="negative"):
        post_transaction(campaign_id=campaign.pk, reason=Reason.MANUAL_ADJUSTMENT,
                         moves=[move(debit=Account.EXPENSE, credit=Account.LIABILITY,
                                     amount_krw=-10, category="all")])
    with pytest.raises(ValueError, match="at least one"):
        post_transaction(campaign_id=campaign.pk, reason=Reason.MANUAL_ADJUSTMENT,
                         moves=[move(debit=Account.EXPENSE, credit=Account.LIABILITY,
                                     amount_krw=0, category="all")])


@pytest.mark.django_db
def test_balance_check_constraint_guards_the_cache(issued):
    voucher = Voucher.objects.first()
    with pytest.raises(IntegrityError):
        _sql("UPDATE vouchers_voucher SET balance_krw = amount_krw + 1 WHERE id = %s",
             [voucher.pk])
    with pytest.raises(IntegrityError):
        _sql("UPDATE vouchers_voucher SET balance_krw = -1 WHERE id = %s", [voucher.pk])


@pytest.mark.django_db
def test_verify_ledger_names_a_voucher_whose_cache_drifted(issued):
    campaign, _ = issued
    voucher = Voucher.objects.filter(status="active").first()
    _sql("UPDATE vouchers_voucher SET balance_krw = balance_krw - 1 WHERE id = %s", [voucher.pk])
    report = verify_ledger(campaign_id=campaign.pk)
    failed = {c.name: c for c in report.checks if not c.ok}
    assert set(failed) == {"voucher_balances_match_postings",
                           "holding_accounts_match_voucher_balances"}
    assert failed["voucher_balances_match_postings"].mismatches == [
        {"voucher_id": voucher.pk, "expected": voucher.amount_krw,
         "actual": voucher.amount_krw - 1}
    ]


@pytest.mark.django_db
def test_verify_ledger_names_an_unbalanced_transaction(issued):
    campaign, _ = issued
    tx_id = LedgerPosting.objects.first().transaction_id
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql("ALTER TABLE vouchers_ledgerposting DISABLE TRIGGER USER")
    _sql("INSERT INTO vouchers_ledgerposting (transaction_id, campaign_id, category, account,"
         " amount_krw, voucher_count) VALUES (%s, %s, 'all', 'expense', 7, 0)",
         [tx_id, campaign.pk])
    _sql("ALTER TABLE vouchers_ledgerposting ENABLE TRIGGER USER")
    report = verify_ledger(campaign_id=campaign.pk)
    failed = {c.name: c for c in report.checks if not c.ok}
    assert failed["ledger_transactions_balance"].mismatches == [
        {"transaction_id": tx_id, "sum_krw": 7}]
    assert "account_totals_match_postings" in failed


@pytest.mark.django_db
def test_verify_ledger_finds_tampered_totals(issued):
    campaign, _ = issued
    _sql("UPDATE vouchers_ledgerbalance SET balance_krw = balance_krw + 5 "
         "WHERE account = 'redeemed' OR account = 'expense'")
    failed = {c.name for c in verify_ledger(campaign_id=campaign.pk).checks if not c.ok}
    assert "account_totals_match_postings" in failed


_accounts = st.sampled_from(list(Account))
_moves = st.lists(
    st.tuples(_accounts, _accounts, st.integers(1, 10**9), st.sampled_from(["all", "eats"])),
    min_size=1, max_size=12,
)


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(_moves, min_size=1, max_size=6))
def test_running_totals_equal_the_sum_of_postings(make_campaign, batches):
    """Whatever balanced transactions are posted, totals per account equal their postings
    and all accounts together sum to zero."""
    expected: dict[str, int] = {}
    with transaction.atomic():
        campaign = make_campaign(slug="prop")
        for batch in batches:
            moves = [move(debit=d, credit=c, amount_krw=amt, category=cat)
                     for d, c, amt, cat in batch]
            post_transaction(campaign_id=campaign.pk, reason=Reason.MANUAL_ADJUSTMENT,
                             moves=moves)
            for m in moves:
                expected[m.debit.value] = expected.get(m.debit.value, 0) + m.amount_krw
                expected[m.credit.value] = expected.get(m.credit.value, 0) - m.amount_krw
        kept = _balances(campaign.pk)
        assert {a: v for a, v in kept.items() if v} == {a: v for a, v in expected.items() if v}
        assert sum(kept.values()) == 0
        checks = {c.name: c.ok for c in verify_ledger(campaign_id=campaign.pk).checks}
        assert checks["ledger_transactions_balance"] and checks["account_totals_match_postings"]
        transaction.set_rollback(True)
