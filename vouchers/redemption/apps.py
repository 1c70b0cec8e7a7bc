from django.apps import AppConfig


class RedemptionConfig(AppConfig):
    name = "vouchers.redemption"
    label = "redemption"
