"""import_eligibility draws a progress bar on a terminal, and only there."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _run_on_terminal(path: Path, stderr: int) -> subprocess.CompletedProcess:
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL":
           f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    return subprocess.run(
        [sys.executable, "manage.py", "import_eligibility", "--campaign", "tty", str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120,
        check=True)


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every writer of the terminal has closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.django_db(transaction=True)
def test_a_terminal_gets_a_progress_bar_and_anything_else_does_not(make_campaign, tmp_path):
    make_campaign(slug="tty")
    path = tmp_path / "registry.csv"
    path.write_text("customer_id,account_status,account_closed_at,phone\n"
                    + "".join(f"{cid},active,,\n" for cid in range(1, 1001)))
    terminal, child_end = pty.openpty()
    # 24 rows, 120 columns: a new pseudo-terminal has no size, and tqdm draws to its width.
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        done = _run_on_terminal(path, child_end)
    finally:
        os.close(child_end)
    drawn = _drain(terminal)
    os.close(terminal)
    assert done.stdout.splitlines()[-1] == "1000"
    assert "read: 100%" in drawn and "load: 100%" in drawn
    out, err = io.StringIO(), io.StringIO()
    call_command("import_eligibility", "--campaign", "tty", str(path), stdout=out, stderr=err)
    assert out.getvalue().splitlines()[-1] == "1000"
    assert err.getvalue() == ""
