from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from accounts.models import Role
from accounts.services import create_principal


class Command(BaseCommand):
    help = "Creates a principal and prints its opaque token (shown once, stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", required=True)

    def handle(self, *args, role, name, **options):
        try:
            _, token = create_principal(role=role, name=name)
        except IntegrityError as exc:
            raise CommandError(f"a principal named {name!r} already exists") from exc
        self.stdout.write(token)
