"""The ``live-rnnrbm`` command: one sub-command per module, each module offering
``add_arguments(parser)`` and ``run(args) -> int``.

    live-rnnrbm generate --out piece.mid --png roll.png
    live-rnnrbm train DATA... --out weights/mine.npz
    live-rnnrbm eval --weights weights/nottingham.npz DATA
    live-rnnrbm play --port "IAC Bus 1"
    live-rnnrbm ports
"""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command → (module, one-line help); modules are imported only when their command runs
COMMANDS = {
    "play": ("live_rnnrbm.play", "play the instrument live on a MIDI port"),
    "ports": ("live_rnnrbm.ports", "list MIDI inputs and outputs with their exact names"),
    "generate": ("live_rnnrbm.generate", "generate a piece offline into a .mid file (and a picture)"),
    "train": ("live_rnnrbm.train", "train an RNN-RBM on MIDI files or a benchmark pickle"),
    "eval": ("live_rnnrbm.evaluate", "log-likelihood and accuracy of weights on data, as in the paper"),
}


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
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["play"] + argv  # no command: the instrument, as a musician expects
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
