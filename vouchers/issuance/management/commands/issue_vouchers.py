"""``issue_vouchers --campaign SLUG [--max-customers N] [--wait]``: create and self-approve
a run (development); with ``--max-customers`` a staged run.

Single-person approval only where ``ALLOW_SELF_APPROVAL`` is on; elsewhere the API's
four-eyes approval is the only way. Prints the run id as the last line.
"""

import argparse
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from vouchers.issuance import selectors, services
from vouchers.issuance.models import RunStatus
from vouchers.models import Campaign

ACTOR = "command:issue_vouchers"
ENDED = {RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.FAILED}


def positive_int(text: str) -> int:
    """``--max-customers``: a whole number of at least 1 (no sign, no decimals)."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


class Command(BaseCommand):
    help = "Create and self-approve an issuance run (development only); print its id."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True)
        parser.add_argument("--max-customers", type=positive_int, default=None,
                            help="a staged run: at most N customers not yet issued, lowest "
                                 "ids first")
        parser.add_argument("--wait", action="store_true",
                            help="show progress until the run ends (needs a running worker)")
        parser.add_argument("--poll-seconds", type=float, default=1.0)

    def handle(self, *args, campaign: str, max_customers: int | None, wait: bool,
               poll_seconds: float, **options):
        if not settings.ALLOW_SELF_APPROVAL:
            raise CommandError("Single-person approval is off (ALLOW_SELF_APPROVAL): create "
                               "the run through the API and have a second operator approve it.")
        target = Campaign.objects.filter(slug=campaign).first()
        if target is None:
            raise CommandError(f"No campaign {campaign!r}.")
        run = services.create_run(campaign=target, actor=ACTOR, dry_run_only=False,
                                  max_customers=max_customers)
        services.approve_run(run_id=run.pk, actor=ACTOR, allow_self_approval=True)
        ended = self._wait(run.pk, poll_seconds) if wait else None
        self.stdout.write(str(run.pk))
        if ended is not None and ended.status != RunStatus.COMPLETED:
            raise CommandError(f"run {run.pk} ended {ended.status}: {ended.failure_detail}")

    def _wait(self, run_id, poll_seconds: float):
        run = selectors.get_run(run_id)
        with tqdm(total=run.eligible_customers, unit="customer", disable=None,
                  file=self.stderr._out) as bar:
            while True:
                run = selectors.get_run(run_id)
                bar.update(selectors.progress(run).customers_done - bar.n)
                if run.status in ENDED:
                    break
                time.sleep(poll_seconds)
        return run
