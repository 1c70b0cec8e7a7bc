from django.core.management.base import BaseCommand, CommandError

from accounts.models import Principal
from accounts.services import revoke_principal


class Command(BaseCommand):
    help = "Revokes a principal's token."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)

    def handle(self, *args, name, **options):
        try:
            principal = revoke_principal(name=name)
        except Principal.DoesNotExist as exc:
            raise CommandError(f"no principal named {name!r}") from exc
        self.stdout.write(f"revoked {principal.name} at {principal.revoked_at.isoformat()}")
