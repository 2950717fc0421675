"""What every command shares: a console sized for terminals and logs, and usage errors as one line + exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rich.console import Console

USAGE_EXIT = 2


def make_console() -> Console:
    """Terminal width on a terminal; 140 columns in logs and CI, so tables are not squeezed."""
    return Console(width=None if sys.stdout.isatty() else 140)


def run_command(body: Callable[[Console], int], console: Console | None = None) -> int:
    """Run `body(console)`; a UsageError (bad key, path, spec, token) prints one line and returns 2."""
    from platform.errors import UsageError

    console = console or make_console()
    try:
        return body(console)
    except UsageError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return USAGE_EXIT
