"""Runs the daily expiry now (what the beat schedule does after midnight)."""

from django.core.management.base import BaseCommand

from vouchers.redemption.expiry import expire_vouchers


class Command(BaseCommand):
    help = ("Books what is left on every voucher past its expiry to `expired`; prints how "
            "many vouchers (last line).")

    def handle(self, *args, **options):
        result = expire_vouchers()
        self.stdout.write(f"expired {result.expired_krw} won on {result.vouchers} vouchers")
        self.stdout.write(str(result.vouchers))
