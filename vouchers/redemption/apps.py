from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_routines(*, using: str, **kwargs) -> None:
    from voucher_service.routines import install
    from vouchers.redemption.services import CHECKOUT_ROUTINE

    install([CHECKOUT_ROUTINE], using=using)


class RedemptionConfig(AppConfig):
    name = "vouchers.redemption"
    label = "redemption"

    def ready(self) -> None:
        # After every migrate: the functions of this app's routines, as its code has them.
        post_migrate.connect(_install_routines, sender=self)
