"""GET /campaigns/{slug}/eligibility: opening time, each status, the cache and its
invalidation, Redis down, throttles."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.core.cache import cache as default_cache
from django.utils import timezone

from tests.eligibility.conftest import (
    ACTIVE,
    AMOUNT,
    CLOSED_A,
    DORMANT,
    EXCLUDED,
    STRANGER,
)
from vouchers.eligibility import cache
from vouchers.models import Campaign, RegistryEntry

pytestmark = pytest.mark.django_db
URL = "/api/v1/campaigns/breach/eligibility"


def check(customer_client, customer_id: int, url: str = URL, **extra):
    return customer_client(customer_id).get(url, **extra)


def test_before_opening_time_it_is_403_with_the_opening_time(make_campaign, customer_client):
    opens = timezone.now() + dt.timedelta(hours=2)
    make_campaign(slug="breach", opens_at=opens)
    response = check(customer_client, ACTIVE)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "eligibility_not_open"
    assert dt.datetime.fromisoformat(body["opens_at"]) == opens


def test_unknown_campaign_is_404(db, customer_client):
    response = check(customer_client, ACTIVE, "/api/v1/campaigns/nope/eligibility")
    assert response.status_code == 404
    assert response.json()["code"] == "campaign_not_found"


def test_customers_only(campaign, role_client, client):
    assert client.get(URL).status_code == 401
    assert role_client("support").get(URL).status_code == 403


def test_unknown_query_parameter_is_refused(campaign, customer_client):
    response = check(customer_client, ACTIVE, URL + "?customer_id=5")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_query_parameter"


@pytest.mark.parametrize("customer_id", [STRANGER, EXCLUDED])
def test_not_in_the_registry_or_excluded_is_not_eligible(campaign, customer_client, customer_id):
    response = check(customer_client, customer_id)
    assert response.status_code == 200
    assert response.json() == {"campaign": "breach", "eligible": False,
                               "status": "not_eligible", "account_status": None,
                               "amount_krw": 0, "exposed": [], "advice": [], "vouchers": []}


@pytest.mark.parametrize(("customer_id", "account"), [(ACTIVE, "active"), (DORMANT, "dormant"),
                                                      (CLOSED_A, "closed")])
def test_registered_before_issuance_is_pending(campaign, customer_client, customer_id, account):
    body = check(customer_client, customer_id).json()
    assert body == {"campaign": "breach", "eligible": True, "status": "pending_issuance",
                    "account_status": account, "amount_krw": AMOUNT, "exposed": [],
                    "advice": [], "vouchers": []}


def test_issued_lists_the_vouchers(issued, customer_client):
    body = check(customer_client, ACTIVE).json()
    assert (body["eligible"], body["status"], body["amount_krw"]) == (True, "issued", AMOUNT)
    vouchers = body["vouchers"]
    assert sorted((v["category"], v["amount_krw"], v["status"]) for v in vouchers) == [
        ("all", 30_000, "active"), ("eats", 20_000, "active")]
    assert all(v["id"].startswith("vch_") and v["campaign"] == "breach" for v in vouchers)
    assert all(len(v["code_last4"]) == 4 for v in vouchers)


def test_a_closed_accounts_own_id_sees_its_unclaimed_vouchers_as_claimable(issued,
                                                                          customer_client):
    body = check(customer_client, CLOSED_A).json()
    assert (body["status"], body["account_status"]) == ("claimable", "closed")
    assert {v["status"] for v in body["vouchers"]} == {"unclaimed"}


def test_a_miss_is_one_query_and_a_hit_none(issued, customer_client,
                                             django_assert_num_queries):
    default_cache.clear()  # the issuance's fences expired
    check(customer_client, DORMANT)  # caches the campaign's facts
    with django_assert_num_queries(1):
        first = check(customer_client, ACTIVE)
    with django_assert_num_queries(0):
        second = check(customer_client, ACTIVE)
    assert first.json() == second.json()


def test_issuing_a_chunk_replaces_the_cached_answer(campaign, issue, customer_client):
    assert check(customer_client, ACTIVE).json()["status"] == "pending_issuance"
    assert check(customer_client, ACTIVE).json()["status"] == "pending_issuance"  # a hit
    issue(campaign)
    assert check(customer_client, ACTIVE).json()["status"] == "issued"


def test_an_answer_read_before_a_change_is_not_put_back_after_it(issued, customer_client):
    """The race the fence closes: a request reads PostgreSQL, a writer commits and
    invalidates, then the request tries to cache what it read."""
    stale = b'{"status": "pending_issuance"}'
    cache.fence_answers("breach", [ACTIVE])
    cache.store_answer("breach", ACTIVE, stale)
    assert cache.lookup("breach", ACTIVE)[1] is None
    assert check(customer_client, ACTIVE).json()["status"] == "issued"


def test_a_changed_campaign_is_seen_once_its_facts_expire(campaign, customer_client):
    assert check(customer_client, ACTIVE).status_code == 200
    Campaign.objects.filter(pk=campaign.pk).update(
        eligibility_opens_at=timezone.now() + dt.timedelta(days=1))
    default_cache.delete(cache.campaign_key("breach"))
    assert check(customer_client, ACTIVE).json()["code"] == "eligibility_not_open"


def _use_redis(settings, url: str) -> None:
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}


def test_a_hit_is_one_redis_command_and_no_query(campaign, customer_client, settings,
                                                 private_redis, django_assert_num_queries):
    """Throttle windows and the cached answer come back in one script call (a private
    Redis, so that nobody else's commands are counted)."""
    _use_redis(settings, private_redis.url())
    first = check(customer_client, ACTIVE)
    server = redis.Redis.from_url(private_redis.url())
    server.config_resetstat()
    with django_assert_num_queries(0):
        second = check(customer_client, ACTIVE)
    calls = {name: stats["calls"] for name, stats in server.info("commandstats").items()
             if not name.startswith(("cmdstat_config", "cmdstat_info"))}
    # One call from the client; inside it, the two windows and the two cached values.
    assert calls == {"cmdstat_evalsha": 1, "cmdstat_incr": 2, "cmdstat_ttl": 2,
                     "cmdstat_get": 2}
    assert second.content == first.content


def _counter(server: redis.Redis, scope: str, ident: int | str) -> int | None:
    value = server.get(default_cache.make_key(f"throttle:{scope}:{ident}"))
    return None if value is None else int(value)


def test_a_redis_restart_costs_no_check_its_throttling(campaign, customer_client, settings,
                                                      private_redis, caplog):
    """The throttles keep a connection per thread: one that Redis closed under them (a
    restart) is replaced within the same request, which is still counted."""
    _use_redis(settings, private_redis.url())
    assert check(customer_client, ACTIVE).status_code == 200
    private_redis.kill()
    private_redis.start()  # same port, every key lost
    with caplog.at_level("WARNING", logger="voucher_service.throttles"):
        assert check(customer_client, ACTIVE).status_code == 200
    assert "throttles unavailable" not in caplog.text
    assert _counter(redis.Redis.from_url(private_redis.url()), "customer_check", ACTIVE) == 1


def test_a_flushed_script_is_loaded_again(campaign, customer_client, settings, private_redis,
                                          caplog):
    _use_redis(settings, private_redis.url())
    server = redis.Redis.from_url(private_redis.url())
    assert check(customer_client, ACTIVE).status_code == 200
    server.script_flush()
    with caplog.at_level("WARNING", logger="voucher_service.throttles"):
        assert check(customer_client, ACTIVE).status_code == 200
    assert "throttles unavailable" not in caplog.text
    assert _counter(server, "customer_check", ACTIVE) == 2


def test_a_threads_throttle_connection_closes_with_the_thread(campaign, customer_client,
                                                             settings, private_redis):
    """A development server runs a thread per request: each thread's connection must go
    with it, or Redis would collect one per request."""
    _use_redis(settings, private_redis.url())
    server = redis.Redis.from_url(private_redis.url())
    assert check(customer_client, ACTIVE).status_code == 200  # the answer is cached
    before = server.info("clients")["connected_clients"]
    statuses = []
    for _ in range(20):
        thread = threading.Thread(target=lambda: statuses.append(
            check(customer_client, ACTIVE).status_code))
        thread.start()
        thread.join()
    assert statuses == [200] * 20
    assert _counter(server, "customer_check", ACTIVE) == 21
    assert server.info("clients")["connected_clients"] <= before + 1


def test_changed_campaign_facts_in_redis_are_seen_at_once(campaign, customer_client):
    """The facts are read with every check's throttle script, not kept by a worker."""
    assert check(customer_client, ACTIVE).status_code == 200
    facts = cache.cached_campaign("breach")
    cache.store_campaign("breach", dataclasses.replace(
        facts, eligibility_opens_at=timezone.now() + dt.timedelta(hours=1)))
    assert check(customer_client, ACTIVE).json()["code"] == "eligibility_not_open"
    cache.store_campaign("breach", facts)
    assert check(customer_client, ACTIVE).status_code == 200


def test_with_redis_down_it_answers_from_postgres(campaign, issue, customer_client, settings,
                                                   private_redis):
    _use_redis(settings, private_redis.url())
    assert check(customer_client, ACTIVE).json()["status"] == "pending_issuance"
    assert cache.lookup("breach", ACTIVE)[1] is not None  # cached in the private Redis
    private_redis.kill()

    issue(campaign)  # its invalidation cannot reach Redis either
    response = check(customer_client, ACTIVE)
    assert response.status_code == 200
    assert response.json()["status"] == "issued"


def test_with_redis_down_throttles_fail_open(campaign, customer_client, settings,
                                            private_redis):
    _use_redis(settings, private_redis.url())
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "customer_check": "1/min"}}
    assert check(customer_client, ACTIVE).status_code == 200
    assert check(customer_client, ACTIVE).status_code == 429
    private_redis.kill()
    assert [check(customer_client, ACTIVE).status_code for _ in range(3)] == [200] * 3


def _rates(settings, **rates: str) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}}


def _assert_throttled(response) -> None:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_per_customer_limit_is_429_with_retry_after(campaign, customer_client, settings):
    _rates(settings, customer_check="2/min")
    assert [check(customer_client, ACTIVE).status_code for _ in range(2)] == [200, 200]
    _assert_throttled(check(customer_client, ACTIVE))
    assert check(customer_client, DORMANT).status_code == 200  # another customer's own limit


def test_per_address_limit_is_429_with_retry_after(campaign, customer_client, settings):
    _rates(settings, ip_check="2/min")
    first = [check(customer_client, cid, REMOTE_ADDR="203.0.113.7").status_code
             for cid in (ACTIVE, DORMANT)]
    assert first == [200, 200]
    _assert_throttled(check(customer_client, CLOSED_A, REMOTE_ADDR="203.0.113.7"))
    # A forged X-Forwarded-For does not buy a new bucket; another address has its own.
    _assert_throttled(check(customer_client, CLOSED_A, REMOTE_ADDR="203.0.113.7",
                            HTTP_X_FORWARDED_FOR="198.51.100.1"))
    assert check(customer_client, CLOSED_A, REMOTE_ADDR="203.0.113.8").status_code == 200


def test_parallel_checks_pass_the_limit_exactly(campaign, customer_client, settings):
    """The window is counted atomically in Redis: 24 checks at once from real threads, each
    with its own client, and exactly the limit's number get through. (The answer and the
    campaign are cached first, so the threads need no database connection.)"""
    _rates(settings, customer_check="9/min")
    assert check(customer_client, ACTIVE).status_code == 200
    clients = [customer_client(ACTIVE) for _ in range(24)]
    start = threading.Barrier(len(clients))

    def one(client) -> int:
        start.wait()
        return client.get(URL).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = list(pool.map(one, clients))
    assert sorted(statuses) == [200] * 8 + [429] * 16


def test_registry_changes_show_once_committed(campaign, customer_client,
                                              django_capture_on_commit_callbacks):
    assert check(customer_client, STRANGER).json()["status"] == "not_eligible"
    with django_capture_on_commit_callbacks(execute=True):
        RegistryEntry.objects.create(campaign=campaign, customer_id=STRANGER,
                                     account_status="active", imported_at=timezone.now())
        assert check(customer_client, STRANGER).json()["status"] == "not_eligible"  # cached
    assert check(customer_client, STRANGER).json()["status"] == "pending_issuance"


def test_a_revocation_replaces_the_cached_answer(issued, customer_client, role_client,
                                                 django_capture_on_commit_callbacks):
    default_cache.clear()  # the issuance's fences expired
    assert check(customer_client, ACTIVE).json()["status"] == "issued"
    with django_capture_on_commit_callbacks(execute=True):
        assert role_client("operations").post(
            "/api/v1/campaigns/breach/revocations", {"customer_id": ACTIVE, "reason": "fraud"},
            format="json").status_code == 201
    body = check(customer_client, ACTIVE).json()
    assert (body["status"], body["eligible"]) == ("not_eligible", False)
    assert {v["status"] for v in body["vouchers"]} == {"revoked"}
