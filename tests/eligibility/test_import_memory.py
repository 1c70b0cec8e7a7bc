"""The import streams: a ~50 MB file loads in a child process whose memory barely grows."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from vouchers.models import RegistryEntry

ROOT = Path(__file__).resolve().parents[2]
ROWS = 100_000
# Each line padded to ~520 bytes with spaces the import trims (in the one column it trims
# once): 50 MB of file without the database time of a million rows.
PAD = " " * 490
# Growth of the child's peak resident memory allowed while importing. Holding the file,
# or any copy of it, would take at least its size (~50 MiB).
MAX_GROWTH_MIB = 25

# Resets the peak (VmHWM) to the current size, imports, reads the peak again.
CHILD = """
import sys
from pathlib import Path
import django
django.setup()
from django.core.management import call_command

def kib(field):
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith(field))

Path("/proc/self/clear_refs").write_text("5")
before = kib("VmHWM")
call_command("import_eligibility", "--campaign", "big", sys.argv[1])
print(before, kib("VmHWM"))
"""


@pytest.mark.django_db(transaction=True)
def test_a_50mb_file_is_imported_in_bounded_memory(make_campaign, tmp_path):
    # Not open yet: no cached answers to fence, so the test times the import alone.
    make_campaign(slug="big", opens_at=timezone.now() + dt.timedelta(days=1))
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("customer_id,account_status,account_closed_at,phone\n")
        out.writelines(f"{cid},active{PAD},,010-{cid // 10_000:04d}-{cid % 10_000:04d}\n"
                       for cid in range(1, ROWS + 1))
    assert path.stat().st_size > 50_000_000
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    child = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=240, check=False)
    assert child.returncode == 0, child.stderr[-2000:]
    *output, peaks = child.stdout.strip().splitlines()
    assert output[-1] == str(ROWS)
    before_kib, after_kib = map(int, peaks.split())
    print(f"peak RSS {before_kib / 1024:.0f} -> {after_kib / 1024:.0f} MiB")
    assert (after_kib - before_kib) / 1024 < MAX_GROWTH_MIB
    assert RegistryEntry.objects.count() == ROWS
