from django.core.management.base import BaseCommand, CommandError

from voucher_service.audit import verify_audit_chain


class Command(BaseCommand):
    help = ("Walks the audit trail's hash chains and looks for events left unsealed too long; "
            "exits non-zero at the first broken link or stale event.")

    def handle(self, *args, **options):
        report = verify_audit_chain()
        if not report.ok:
            brk = report.first_break
            raise CommandError(f"audit chain broken at event {brk.event_id}: {brk.reason}")
        self.stdout.write(f"audit chain intact: {report.events_checked} events sealed, "
                          f"{report.unsealed} awaiting the sealer")
