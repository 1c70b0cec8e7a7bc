"""Runs the daily expiry now (what the beat schedule does after midnight)."""

from django.core.management.base import BaseCommand

from vouchers.redemption.expiry import expire_vouchers


class Command(BaseCommand):
    help = "Expires every voucher past its expiry; prints how many (last line)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, batch_size: int | None, **options):
        result = expire_vouchers(batch_size=batch_size)
        self.stdout.write(f"expired {result.expired_krw} won on {result.vouchers} vouchers")
        self.stdout.write(str(result.vouchers))
