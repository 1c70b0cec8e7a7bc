from django.core.management.base import BaseCommand, CommandError

from accounts.identity import mint_customer_token


class Command(BaseCommand):
    help = "Development only: prints a customer JWT signed with the development key."

    def add_arguments(self, parser):
        parser.add_argument("customer_id", type=int)
        parser.add_argument("--ttl", type=int, default=3600, help="seconds")

    def handle(self, *args, customer_id, ttl, **options):
        if customer_id <= 0:
            raise CommandError("customer_id must be a positive integer")
        try:
            token = mint_customer_token(customer_id, ttl_seconds=ttl)
        except PermissionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(token)
