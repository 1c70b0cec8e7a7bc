from django.core.management.base import BaseCommand, CommandError

from vouchers.finance.services import reconcile
from vouchers.models import Campaign


class Command(BaseCommand):
    help = "Reconciles registry, vouchers, ledger and audit chain; exits 1 when a check fails."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", help="campaign slug (default: everything)")

    def handle(self, *args, campaign=None, **options):
        target = None
        if campaign:
            try:
                target = Campaign.objects.get(slug=campaign)
            except Campaign.DoesNotExist as exc:
                raise CommandError(f"no campaign {campaign!r}") from exc
        report = reconcile(campaign=target, actor="system:reconcile")
        for check in report.checks:
            state = "ok  " if check["ok"] else "FAIL"
            self.stdout.write(
                f"{state} {check['name']}: expected {check['expected']}, actual {check['actual']}"
            )
        if not report.ok:
            raise CommandError("reconciliation failed")
        self.stdout.write("reconciliation ok")
