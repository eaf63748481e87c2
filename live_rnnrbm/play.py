"""`live-rnnrbm play` (not built yet)."""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("live-rnnrbm play: not available in this version yet", file=sys.stderr)
    return 2
