"""The entry of every ``benchmarks/*.py`` script: the command line's error contract for benchmarks too."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_script(main: Callable[[], int | None]) -> int:
    """Run a benchmark's ``main``; a failure caused by the user's input or environment (a missing protocol
    file, a run folder of another configuration, unreadable data, …: :func:`robustdepth.cli.expected_errors`)
    is one ``error:`` line on stderr and exit status 2, as for ``robustdepth`` itself."""
    from robustdepth.cli import expected_errors, one_line

    try:
        return int(main() or 0)
    except expected_errors() as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2


__all__ = ["run_script"]
