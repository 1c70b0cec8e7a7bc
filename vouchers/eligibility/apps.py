from django.apps import AppConfig


class EligibilityConfig(AppConfig):
    name = "vouchers.eligibility"
    label = "eligibility"

    def ready(self) -> None:
        from vouchers.eligibility import changes

        changes.connect()
