"""What leaked: the registry file's ``exposed`` column through ``import_eligibility``, and
``exposed``/``advice`` in the eligibility answer (cached or not, Redis up or down), in
support's lookup and in the OpenAPI document."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache as default_cache
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from tests.eligibility.test_check import _use_redis
from vouchers.eligibility import cache
from vouchers.eligibility.advice import ADVICE
from vouchers.models import Exclusion, ExposedKind, RegistryEntry

pytestmark = pytest.mark.django_db
URL = "/api/v1/campaigns/leak/eligibility"
HEADER = "customer_id,account_status,account_closed_at,phone,exposed"
LINES = [
    "1,active,,010-1234-5678,email|name",
    "2,dormant,,, Phone | entrance_code|phone|EMAIL ",  # spaces, case, order, a repeat
    "3,active,,,",  # nothing known exposed
    "4,closed,2025-12-01,,order_history|entrance_code|shipping_address|phone|email|name",
]
EXPECTED = {
    1: ["email", "name"],
    2: ["email", "entrance_code", "phone"],
    3: [],
    4: ["email", "entrance_code", "name", "order_history", "phone", "shipping_address"],
}


@pytest.fixture
def campaign(make_campaign):
    return make_campaign(slug="leak")


@pytest.fixture
def run_import(campaign, tmp_path, capsys, django_capture_on_commit_callbacks):
    """``run_import(*lines, header=HEADER)``: the command on a file of these lines, with
    its after-commit fences written; returns the lines it printed."""

    def run(*lines: str, header: str = HEADER, skip_invalid: bool = False) -> list[str]:
        path = tmp_path / "registry.csv"
        path.write_text("\n".join([header, *lines]) + "\n")
        with django_capture_on_commit_callbacks(execute=True):
            call_command("import_eligibility", "--campaign", "leak", str(path),
                         *(["--skip-invalid"] if skip_invalid else []))
        return capsys.readouterr().out.strip().splitlines()

    return run


def fences_expire() -> None:
    """What ELIGIBILITY_CACHE_FENCE_SECONDS after an import into an open campaign does."""
    default_cache.clear()


def answer(customer_client, customer_id: int) -> dict:
    response = customer_client(customer_id).get(URL)
    assert response.status_code == 200
    return response.json()


def test_exposed_kinds_are_answered_sorted_with_a_sentence_each(run_import, customer_client):
    assert run_import(*LINES)[-2] == "4 lines: 4 added, 0 updated, 0 unchanged, 0 invalid skipped"
    for customer_id, kinds in EXPECTED.items():
        body = answer(customer_client, customer_id)
        assert body["exposed"] == kinds
        assert body["advice"] == [ADVICE[kind] for kind in kinds]
    assert "entrance code" in answer(customer_client, 2)["advice"][1]


def test_a_customer_not_in_the_registry_has_nothing_exposed(run_import, customer_client):
    run_import(*LINES)
    body = answer(customer_client, 99)
    assert (body["status"], body["exposed"], body["advice"]) == ("not_eligible", [], [])


def test_an_excluded_customer_still_learns_what_leaked(run_import, campaign, customer_client):
    run_import(*LINES)
    Exclusion.objects.create(campaign=campaign, customer_id=1, reason="fraud", created_by="t")
    body = answer(customer_client, 1)
    assert (body["status"], body["exposed"]) == ("not_eligible", ["email", "name"])


@pytest.mark.parametrize("bad", ["email|password", "email||name", "email|", "|", "e-mail"])
def test_an_unknown_kind_is_a_bad_line_and_nothing_is_loaded(run_import, capsys, bad):
    with pytest.raises(CommandError, match="1 of 5 lines are invalid; nothing was loaded"):
        run_import(*LINES, f"5,active,,,{bad}")
    assert "line 6: exposed is not kinds joined by | from name, email, phone, " \
           "shipping_address, entrance_code, order_history" in capsys.readouterr().err
    assert not RegistryEntry.objects.exists()


def test_skip_invalid_loads_the_lines_with_known_kinds(run_import, customer_client):
    out = run_import(*LINES, "5,active,,,email|password", skip_invalid=True)
    assert out[-1] == "4"
    assert answer(customer_client, 4)["exposed"] == EXPECTED[4]


def test_reimporting_the_same_file_changes_nothing(run_import, customer_client):
    run_import(*LINES)
    fences_expire()
    cached = {cid: answer(customer_client, cid) for cid in EXPECTED}
    assert run_import(*LINES)[-2] == (
        "4 lines: 0 added, 0 updated, 4 unchanged, 0 invalid skipped")
    # Nothing was fenced: every answer is still the cached one.
    assert all(cache.lookup("leak", cid)[1] is not None for cid in EXPECTED)
    assert {cid: answer(customer_client, cid) for cid in EXPECTED} == cached


def test_a_changed_exposed_value_replaces_a_warm_cached_answer(run_import, customer_client):
    run_import(*LINES)
    fences_expire()
    assert answer(customer_client, 1)["exposed"] == ["email", "name"]
    assert cache.lookup("leak", 1)[1] is not None  # warm: the next check is a hit
    changed = [LINES[0].replace("email|name", "name|entrance_code"), *LINES[1:]]
    assert run_import(*changed)[-2] == (
        "4 lines: 0 added, 1 updated, 3 unchanged, 0 invalid skipped")
    body = answer(customer_client, 1)
    assert body["exposed"] == ["entrance_code", "name"]
    assert body["advice"] == [ADVICE["entrance_code"], ADVICE["name"]]


def test_an_emptied_value_clears_what_was_exposed(run_import, customer_client):
    run_import(*LINES)
    assert run_import("1,active,,010-1234-5678,")[-2] == (
        "1 lines: 0 added, 1 updated, 0 unchanged, 0 invalid skipped")
    assert answer(customer_client, 1)["exposed"] == []


def test_a_file_without_the_column_imports_as_before_and_keeps_what_is_known(
        run_import, customer_client):
    run_import(*LINES)
    old_format = [line.rsplit(",", 1)[0] for line in LINES]
    header = HEADER.removesuffix(",exposed")
    assert run_import(*old_format, "5,active,,", header=header)[-2] == (
        "5 lines: 1 added, 0 updated, 4 unchanged, 0 invalid skipped")
    assert {cid: answer(customer_client, cid)["exposed"] for cid in EXPECTED} == EXPECTED
    assert answer(customer_client, 5)["exposed"] == []


def test_with_redis_down_the_answer_is_the_same(run_import, customer_client, settings,
                                               private_redis):
    _use_redis(settings, private_redis.url())
    run_import(*LINES)
    fences_expire()
    client = customer_client(4)
    client.get(URL)
    cached = client.get(URL)
    assert cache.lookup("leak", 4)[1] == cached.content  # that one was a hit
    private_redis.kill()
    fallback = client.get(URL)
    assert fallback.status_code == 200
    assert fallback.content == cached.content
    assert fallback.json()["exposed"] == EXPECTED[4]


def test_support_sees_what_leaked(run_import, role_client):
    run_import(*LINES)
    [standing] = role_client("support").get("/api/v1/support/customers/2").json()["campaigns"]
    assert standing["exposed"] == EXPECTED[2]
    assert standing["advice"] == [ADVICE[kind] for kind in EXPECTED[2]]


def test_every_kind_has_advice_and_none_carries_a_link_or_a_number():
    assert set(ADVICE) == set(ExposedKind.values)
    for sentence in ADVICE.values():
        assert not any(mark in sentence.lower() for mark in ("http", "www", ".com", "://"))
        assert not re.search(r"[0-9]", sentence)
        assert sentence.endswith(".")
    assert "change your building's entrance code" in ADVICE["entrance_code"].lower()


def test_the_schema_documents_exposed_and_advice(client):
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()[
        "components"]["schemas"]
    for name in ("Eligibility", "CampaignStanding"):
        schema = schemas[name]
        assert {"exposed", "advice"} <= set(schema["required"])
        kinds = schema["properties"]["exposed"]["items"]["$ref"].rsplit("/", 1)[1]
        assert sorted(schemas[kinds]["enum"]) == sorted(ExposedKind.values)
        assert schema["properties"]["advice"] == {**schema["properties"]["advice"],
                                                  "type": "array",
                                                  "items": {"type": "string"}}


def test_the_database_refuses_bits_of_no_kind(run_import):
    run_import(*LINES)
    for value in (64, -1):
        with pytest.raises(IntegrityError), transaction.atomic():
            RegistryEntry.objects.filter(customer_id=1).update(exposed=value)
    with connection.cursor() as cursor:
        cursor.execute("SELECT convalidated FROM pg_constraint "
                       "WHERE conname = 'registry_exposed_bits'")
        assert cursor.fetchone() == (True,)
