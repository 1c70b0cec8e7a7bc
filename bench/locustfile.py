"""Opening-day traffic for locust: eligibility checks, voucher lists and a few redemptions.

Driven by bench/load_opening_day.py, which seeds the database, starts gunicorn and hands
over customers, their tokens and voucher ids in ``LOAD_FIXTURE`` (a JSON file).
"""

from __future__ import annotations

import json
import os
import random
import uuid

from locust import HttpUser, constant, task

with open(os.environ["LOAD_FIXTURE"]) as fixture_file:
    FIXTURE = json.load(fixture_file)
CUSTOMERS = FIXTURE["customers"]  # [[customer_id, jwt, voucher_public_id], ...]
CHECKOUT = {"Authorization": f"Bearer {FIXTURE['checkout_token']}"}
SLUG = FIXTURE["campaign"]


class OpeningDayCustomer(HttpUser):
    wait_time = constant(0)  # closed loop: each user sends its next request at once

    def on_start(self) -> None:
        self.customer_id, token, self.voucher = random.choice(CUSTOMERS)
        self.headers = {"Authorization": f"Bearer {token}"}

    @task(15)
    def check_eligibility(self) -> None:
        self.client.get(f"/api/v1/campaigns/{SLUG}/eligibility", headers=self.headers,
                        name="eligibility")

    @task(4)
    def list_vouchers(self) -> None:
        self.client.get("/api/v1/me/vouchers", headers=self.headers, name="me/vouchers")

    @task(1)
    def redeem(self) -> None:
        body = {"voucher_id": self.voucher, "customer_id": self.customer_id,
                "order_id": uuid.uuid4().hex, "amount_krw": 100, "order_total_krw": 10_000,
                "merchant_category": "eats", "capture": True}
        self.client.post("/api/v1/redemptions", json=body, name="redemptions",
                         headers={**CHECKOUT, "Idempotency-Key": uuid.uuid4().hex})
