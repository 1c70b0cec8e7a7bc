from django.apps import AppConfig


class EligibilityConfig(AppConfig):
    name = "vouchers.eligibility"
    label = "eligibility"
