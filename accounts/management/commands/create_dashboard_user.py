from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from accounts.dashboard_users import DASHBOARD_ROLES, create_dashboard_user


class Command(BaseCommand):
    help = "Creates a dashboard user (finance or operations) and prints its password once."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, choices=DASHBOARD_ROLES)
        parser.add_argument("--username", required=True)

    def handle(self, *args, role, username, **options):
        try:
            password = create_dashboard_user(username=username, role=role)
        except IntegrityError as exc:
            raise CommandError(f"user {username!r} already exists") from exc
        self.stdout.write(password)
