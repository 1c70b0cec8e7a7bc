from django.apps import AppConfig


class AppealsConfig(AppConfig):
    name = "vouchers.appeals"
    label = "appeals"
