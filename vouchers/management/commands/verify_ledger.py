from django.core.management.base import BaseCommand, CommandError

from vouchers.ledger.verification import verify_ledger
from vouchers.models import Campaign


class Command(BaseCommand):
    help = "Checks the ledger: zero-sum transactions, voucher balances, account totals."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", help="campaign slug (default: all campaigns)")

    def handle(self, *args, campaign=None, **options):
        campaign_id = None
        if campaign:
            try:
                campaign_id = Campaign.objects.get(slug=campaign).pk
            except Campaign.DoesNotExist as exc:
                raise CommandError(f"no campaign {campaign!r}") from exc
        report = verify_ledger(campaign_id=campaign_id)
        for check in report.checks:
            self.stdout.write(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.actual}")
            for mismatch in check.mismatches:
                self.stdout.write(f"     {mismatch}")
        if not report.ok:
            raise CommandError("ledger verification failed")
        self.stdout.write("ledger ok")
