"""``robustdepth priors``: offline priors for training (depth histograms, object masks, …).

Each prior command is its own module with ``add_subparser(commands)``; this module only groups them.
"""

from __future__ import annotations

import importlib
from typing import Any

PRIOR_COMMAND_MODULES: tuple[str, ...] = ("robustdepth.providers.histogram_cli", "robustdepth.providers.masks_cli")


def add_parser(sub: Any) -> None:
    if not PRIOR_COMMAND_MODULES:
        return
    p = sub.add_parser("priors", help="offline priors (histograms, masks, …)", description=(
        "Compute offline priors that recipes read through providers or sample hooks."))
    commands = p.add_subparsers(dest="priors_command", metavar="PRIOR", required=True)
    for module in PRIOR_COMMAND_MODULES:
        importlib.import_module(module).add_subparser(commands)
