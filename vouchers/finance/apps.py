from django.apps import AppConfig


class FinanceConfig(AppConfig):
    name = "vouchers.finance"
    label = "finance"
