"""``import_eligibility --campaign SLUG FILE.csv [--skip-invalid]``: load the registry.

Prints what it did, then the campaign's registry row count as the last line. Bad lines
are reported by number and rule (never their content); a file with bad lines loads
nothing unless ``--skip-invalid``. A progress bar (bytes read, then load batches) goes
to standard error on a terminal.
"""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from voucher_service.problems import ProblemError
from vouchers.eligibility.importing import RegistryFileRejected, import_registry
from vouchers.models import Campaign

ACTOR = "command:import_eligibility"
HELP = """Load a campaign's affected-customer registry from a CSV file.

Header: customer_id,account_status,account_closed_at,phone and optionally exposed (any
order). customer_id: a positive integer, once per file. account_status: active, dormant
or closed. account_closed_at: required for closed accounts, empty for the others; ISO
8601, read in Asia/Seoul when it has no offset. phone: optional; a Korean mobile number
in any common format (010-1234-5678, +82 10 1234 5678, ...), stored only as a keyed hash.
exposed: what of the customer's data the leak exposed, kinds joined by | from name,
email, phone, shipping_address, entrance_code, order_history (any order), empty for
nothing known; a file without the column leaves what is stored as it was.
Re-importing a file changes nothing; a new file adds its new customers."""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="the campaign's slug")
        parser.add_argument("file", help="the CSV file")
        parser.add_argument("--skip-invalid", action="store_true",
                            help="load the good lines of a file that has bad ones")
        parser.add_argument("--show-problems", type=int, default=20, metavar="N",
                            help="how many bad lines to list (all are counted)")

    def handle(self, *args, campaign: str, file: str, skip_invalid: bool,
               show_problems: int, **options):
        target = Campaign.objects.filter(slug=campaign).first()
        if target is None:
            raise CommandError(f"No campaign {campaign!r}.")
        bars: dict[str, tqdm] = {}

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage not in bars:
                for bar in bars.values():
                    bar.close()
                bars[stage] = tqdm(total=total, desc=stage, disable=None, file=self.stderr._out,
                                   **({"unit": "B", "unit_scale": True} if stage == "read"
                                      else {"unit": "batch"}))
            bars[stage].update(done)

        try:
            with open(file, "rb") as source:
                result = import_registry(campaign=target, source=source, actor=ACTOR,
                                         skip_invalid=skip_invalid,
                                         problems_shown=show_problems, progress=progress)
        except RegistryFileRejected as exc:
            self._list_problems(exc.problems, exc.invalid)
            raise CommandError(str(exc.detail)) from None
        except (ProblemError, OSError) as exc:
            raise CommandError(str(getattr(exc, "detail", exc))) from None
        finally:
            for bar in bars.values():
                bar.close()
        if result.invalid:
            self._list_problems(result.problems, result.invalid)
        self.stdout.write(
            f"{result.rows} lines: {result.inserted} added, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.invalid} invalid skipped"
        )
        self.stdout.write(str(result.registry_rows))

    def _list_problems(self, problems, invalid: int) -> None:
        for problem in problems:
            self.stderr.write(str(problem))
        if invalid > len(problems):
            self.stderr.write(f"... and {invalid - len(problems)} more invalid lines")
