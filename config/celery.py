"""The Celery app: JSON only, late acknowledgement, tasks that survive a killed worker."""

import os

from celery import Celery

from voucher_service import schedule as audit_schedule
from vouchers.eligibility import schedule as eligibility_schedule
from vouchers.finance import schedule as finance_schedule
from vouchers.issuance import schedule as issuance_schedule
from vouchers.redemption import schedule as redemption_schedule

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    task_time_limit=15 * 60,
    task_soft_time_limit=14 * 60,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    timezone="Asia/Seoul",
    enable_utc=True,
    beat_schedule={
        **audit_schedule.BEAT_SCHEDULE,
        **eligibility_schedule.BEAT_SCHEDULE,
        **issuance_schedule.BEAT_SCHEDULE,
        **redemption_schedule.BEAT_SCHEDULE,
        **finance_schedule.BEAT_SCHEDULE,
    },
)
app.autodiscover_tasks()
