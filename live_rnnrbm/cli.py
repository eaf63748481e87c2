"""The ``live-rnnrbm`` command: one sub-command per module, each module offering
``add_arguments(parser)`` and ``run(args) -> int``.

    live-rnnrbm generate --out piece.mid --png roll.png
    live-rnnrbm train DATA... --out weights/mine.npz
    live-rnnrbm eval --weights weights/nottingham.npz DATA
    live-rnnrbm corpus build DATA... --out data.cache       (then train and eval read data.cache)
    live-rnnrbm tune DATA... --out tuning/ -- --valid-pieces 20   (the tune extra: Ray Tune)
    live-rnnrbm play --port "IAC Bus 1"
    live-rnnrbm ports
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from typing import Any, Callable, Sequence

# sub-command → (module, one-line help); modules are imported only when their command runs
COMMANDS = {
    "play": ("live_rnnrbm.live.cli", "play the instrument live on a MIDI port"),
    "ports": ("live_rnnrbm.live.ports", "list MIDI inputs and outputs with their exact names"),
    "generate": ("live_rnnrbm.generate", "generate a piece offline into a .mid file (and a picture)"),
    "train": ("live_rnnrbm.train.cli", "train an RNN-RBM on MIDI files or a benchmark pickle"),
    "eval": ("live_rnnrbm.eval.cli", "log-likelihood and accuracy of weights on data, as in the paper"),
    "corpus": ("live_rnnrbm.data.corpus_cli", "convert MIDI files and pickles into a cache once, for train and eval"),
    "tune": ("live_rnnrbm.tune.cli", "search the training options with Ray Tune, every trial a train run"),
}
# commands that pass what follows "--" on to another command, in this attribute of their args
# (tune: the train flags of every trial)
PASS_ON = {"tune": "train_flags"}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help, unless the help already says what the default is
    or there is none worth printing (argparse's own ArgumentDefaultsHelpFormatter printed
    "(default 50) (default: None)" for an option whose help named a default the code fills in)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.default is None
                or action.default is False or action.default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def flag_errors(args: argparse.Namespace, rules: Sequence[tuple[str, Callable[[Any], bool], str]]) -> str | None:
    """One line naming every flag whose value breaks its rule, e.g. "--frames must be ≥ 1, not -5";
    None when all are fine. ``rules``: (dest, test, what the value must be); a None value (flag left
    out) is never checked."""
    bad = [f"--{dest.replace('_', '-')} must be {must}, not {getattr(args, dest)}" for dest, ok, must in rules
           if getattr(args, dest) is not None and not ok(getattr(args, dest))]
    return "; ".join(bad) or None


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="live-rnnrbm", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A real-time generative MIDI instrument built on the RNN-RBM "
                    "(Boulanger-Lewandowski, Bengio & Vincent, ICML 2012).",
        epilog="With no command, `live-rnnrbm` plays the default preset on a virtual port named "
               "'live-rnnrbm'.\nRun `live-rnnrbm COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"live-rnnrbm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only the command being run pays for its imports
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        # play takes no positional argument, so a bare word first is a mistyped command
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        print(f"live-rnnrbm: error: unknown command {argv[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
              + f"; the commands are: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["play"] + argv  # no command: the instrument, as a musician expects
    parser = build_parser(argv)
    passed_on: list[str] = []
    if argv[0] in PASS_ON and "--" in argv:
        argv, passed_on = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if args.command in PASS_ON:
        setattr(args, PASS_ON[args.command], passed_on)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
