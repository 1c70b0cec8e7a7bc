from django.apps import AppConfig


class IssuanceConfig(AppConfig):
    name = "vouchers.issuance"
    label = "issuance"
