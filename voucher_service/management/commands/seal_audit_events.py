from django.core.management.base import BaseCommand

from voucher_service.sealing import seal_events


class Command(BaseCommand):
    help = "Seals the audit events appended since the last seal (what the beat job does)."

    def handle(self, *args, **options):
        self.stdout.write(f"sealed {seal_events()} events")
