import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.dashboard_users import create_dashboard_user
from vouchers.finance.services import reconcile
from vouchers.issuance import processing
from vouchers.issuance.chunk import issue_chunk

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def issued_campaign(make_campaign, load_registry):
    campaign = make_campaign(slug="dash", components=[{"category": "all", "amount_krw": 50_000}])
    load_registry(campaign, {i: "closed" if i % 5 == 0 else "active" for i in range(1, 41)})
    issue_chunk(campaign_id=campaign.pk, lo=1, hi=100, run_id=None, chunk_id=None)
    reconcile(campaign=campaign, actor="test")
    return campaign


@pytest.mark.django_db
def test_dashboard_needs_a_signed_in_staff_member(client, django_user_model):
    assert client.get("/dashboard/")["Location"].startswith("/dashboard/login/")
    django_user_model.objects.create_user(username="nobody", password="pw-123456789")
    client.login(username="nobody", password="pw-123456789")
    assert client.get("/dashboard/").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["finance", "operations"])
def test_dashboard_shows_the_figures_the_api_reports(client, role_client, issued_campaign, role):
    password = create_dashboard_user(username=f"{role}-user", role=role)
    assert client.login(username=f"{role}-user", password=password)
    page = client.get("/dashboard/", {"campaign": "dash"}).content.decode()
    summary = role_client("finance").get("/api/v1/finance/summary",
                                          {"campaign": "dash"}).json()
    for name in ("issued_krw", "redeemed_krw", "outstanding_krw", "expired_krw"):
        shown = re.search(rf'id="{name.replace("_", "-")}" data-krw="(-?\d+)"', page)
        assert int(shown.group(1)) == summary[name]
    assert "2,000,000 won" in page
    assert "All checks pass" in page


@pytest.mark.django_db
def test_dashboard_shows_runs_in_progress(client, role_client, make_campaign, load_registry,
                                          settings):
    settings.ISSUANCE_CHUNK_SIZE = 10
    campaign = make_campaign(slug="running")
    load_registry(campaign, {cid: "active" for cid in range(1, 41)})
    ops, ops2 = role_client("operations"), role_client("operations")
    run_id = ops.post("/api/v1/campaigns/running/issuance-runs", {"dry_run": False},
                      format="json").json()["id"]
    assert ops2.post(f"/api/v1/issuance-runs/{run_id}/approve").status_code == 200
    first_chunk = processing.dispatch(run_id=run_id)[0]
    processing.process_chunk(chunk_id=first_chunk, claim="dashboard-test")

    password = create_dashboard_user(username="ops-runs", role="operations")
    assert client.login(username="ops-runs", password=password)
    page = client.get("/dashboard/", {"campaign": "running"}).content.decode()
    row = re.search(rf"<tr><td>{run_id}</td><td>(\w+)</td><td><progress max=\"1\" "
                    rf"value=\"([\d.]+)\"></progress> ([\d.]+)%</td><td>(\d+)</td>", page)
    assert row.groups() == ("running", "0.25", "25.0", "10")


@pytest.mark.django_db
def test_create_dashboard_user_command_prints_a_password(client, capsys):
    call_command("create_dashboard_user", "--role", "finance", "--username", "fin")
    password = capsys.readouterr().out.strip().splitlines()[-1]
    assert client.login(username="fin", password=password)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("Debian's chromium and chromium-driver are required (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1100"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


@pytest.mark.django_db(transaction=True)
def test_dashboard_in_a_real_browser(live_server, browser, issued_campaign, role_client):
    from selenium.webdriver.common.by import By

    password = create_dashboard_user(username="fin-browser", role="finance")
    browser.get(f"{live_server.url}/dashboard/?campaign=dash")
    assert "/dashboard/login/" in browser.current_url
    browser.find_element(By.NAME, "username").send_keys("fin-browser")
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()

    summary = role_client("finance").get("/api/v1/finance/summary",
                                          {"campaign": "dash"}).json()
    issued = browser.find_element(By.ID, "issued-krw")
    assert int(issued.get_attribute("data-krw")) == summary["issued_krw"] == 2_000_000
    assert issued.text == "2,000,000 won"
    outstanding = browser.find_element(By.ID, "outstanding-krw")
    assert int(outstanding.get_attribute("data-krw")) == summary["outstanding_krw"]
    assert browser.find_element(By.ID, "reconciliation-state").text.startswith("All checks pass")
    assert browser.find_element(By.ID, "chart").is_displayed()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
