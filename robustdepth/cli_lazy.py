"""Fast command-line start: import a subcommand's module only when that subcommand runs.

``robustdepth --help`` and argument errors must answer in well under a second, but several subcommand
modules import torch, OpenCV or ONNX at module level (seconds on a small CPU). The top-level help therefore
lists those commands from :data:`COMMAND_HELP` (a placeholder parser each), and only the module of the
command actually named on the command line is imported and asked to build its real parser.

Options and ``KEY=VALUE`` overrides may come in any order (``eval RUN --protocol world data.root=X``):
every parser without nested subcommands parses "intermixed" (``argparse``'s ``parse_intermixed_args``).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

# Extension module -> (top-level command it registers, one-line help for the top-level listing).
COMMAND_HELP: dict[str, tuple[str, str]] = {
    "robustdepth.world.cli": ("world", "generate / show the embedded all-weather driving world"),
    "robustdepth.degrade.cli": ("degrade", "offline degraded training sets"),
    "robustdepth.bench": ("bench", "benchmarks (corruptions, methods, …)"),
    "robustdepth.export_cli": ("export", "export the depth network to ONNX"),
    "robustdepth.providers.cli": ("priors", "offline priors (histograms, masks, …)"),
    "robustdepth.data.cli": ("data", "check real datasets, export / precompute their GT"),
    "robustdepth.evaluation.pose_cli": ("eval-pose", "pose ATE on 5-frame snippets (Monodepth2's evaluate_pose)"),
    "robustdepth.pipeline_cli": ("pipeline", "train a distillation recipe end to end (teacher, then student)"),
    "robustdepth.weights.cli": ("weights", "import released weights (Monodepth2, md4all, ACDepth, …)"),
    "robustdepth.app": ("app", "browser demo: depth of 1–2 models under night/rain/fog/snow"),
}


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: the first token that is not a top-level option (``-h``,
    ``--help``, ``--version`` take no value), or None."""
    for token in argv:
        if not token.startswith("-"):
            return token
    return None


def _has_nested_commands(parser: argparse.ArgumentParser) -> bool:
    """True when intermixed parsing is impossible: a subparsers action (or a REMAINDER positional), or a
    mutually exclusive group holding a positional."""
    for action in parser._actions:  # argparse keeps no public list of actions
        if action.nargs in (argparse.PARSER, argparse.REMAINDER):
            return True
    return any(action.option_strings == [] for group in parser._mutually_exclusive_groups
               for action in group._group_actions)


class IntermixedParser(argparse.ArgumentParser):
    """An ArgumentParser whose options and positionals may be interleaved (``cmd POS --opt V KEY=VALUE``).

    Parsers with nested subcommands parse as usual (``argparse`` cannot intermix around them); their
    subparsers are of this class too, so every leaf command intermixes.
    """

    _intermixing = False

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing or _has_nested_commands(self):
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # parse_known_intermixed_args calls back into parse_known_args
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def add_extension_commands(sub: Any, modules: Sequence[str], command: str | None) -> None:
    """Register the extension commands on ``sub``: the module of ``command`` is imported and builds its
    real parser; every other one gets a placeholder with its help line (nothing imported). With
    ``command=None`` every command is a placeholder (the top-level help)."""
    for module in modules:
        name, help_line = COMMAND_HELP.get(module, (None, ""))
        if name is not None and name != command:
            sub.add_parser(name, help=help_line, add_help=False)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and module.startswith(err.name):
                continue  # that part of the package is not installed / not written
            raise
        add = getattr(mod, "add_parser", None)
        if add is not None:
            add(sub)
