"""`live-rnnrbm play`: the command line — flags over the preset into ``Settings``, the extras a
setting needs, the weights (and every preset to switch to) loaded — then a ``Session`` (session.py)
started, played and closed, whatever stops it. Exit 2 with one line for anything the user can mend.

    live-rnnrbm play                                  # default preset, virtual port "live-rnnrbm"
    live-rnnrbm play --port "IAC Bus 1" --bpm 96
    live-rnnrbm play --preset jsb --input "Keystation" --mode harmonize --record session.mid
    live-rnnrbm play --clock "DAW clock" --steps-per-beat 4     # follow an external MIDI clock
    live-rnnrbm play --clock link                               # on the Ableton Link session's beat
"""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import TYPE_CHECKING

from ..signals import catch_stop_signals
from .session import Session, say

if TYPE_CHECKING:  # the command line must not wait for numba to say that a flag is wrong
    from .settings import Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .settings import add_setting_flags
    p.add_argument("--preset", help="preset name (default, jsb, ...) or a .yaml path; default: the shipped 'default'")
    add_setting_flags(p)  # one flag per preset key: a flag given overrides the preset, one left out does not
    p.add_argument("--learn", action="store_true",
                   help="MIDI learn: the terminal asks for each control in turn, the next CC moved on --input "
                        "becomes it; then it offers to save the map to your preset (key l while playing: the same)")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: run until stopped)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="run the clock and the frame worker with real-time scheduling when the OS allows it")


def settings_from(args: argparse.Namespace) -> Settings:
    from .presets import load_preset
    from .settings import flag_values, merge
    return merge(load_preset(args.preset), flag_values(args))


def run(args: argparse.Namespace) -> int:
    from .settings import PresetError
    try:
        settings = settings_from(args)
    except PresetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.learn and not (settings.input and sys.stdin.isatty()):
        print("error: --learn listens for CCs on --input and asks in the terminal: give --input and run it "
              "in a terminal", file=sys.stderr)
        return 2
    if args.duration is not None and not args.duration > 0:
        print("error: --duration must be > 0 seconds", file=sys.stderr)
        return 2
    if settings.osc_port is not None and not osc_available():
        print('error: OSC control (osc_port, --osc-port) needs python-osc: pip install "live-rnnrbm[osc]"',
              file=sys.stderr)
        return 2
    if settings.link_clock:
        from .link import available
        if not available():
            print('error: the Ableton Link clock (clock: link, --clock link) needs aalink: '
                  'pip install "live-rnnrbm[link]"', file=sys.stderr)
            return 2

    # The MIDI callback, the frame worker and the clock pass the GIL between them; Python's default
    # 5 ms switch interval would let each hand-off eat into the time before the next tick.
    sys.setswitchinterval(0.0002)

    from ..data.weights import WeightsError, load_model, resolve_weights
    from .ports import PortError
    from .settings import with_weights_own
    spec = settings.weights
    if spec in ("nottingham", "jsb") and not resolve_weights(spec).exists():
        say(f"the shipped '{spec}' weights are not in this installation")
        spec = None  # load_model then falls back to an untrained model, with a warning
    try:
        model = load_model(spec, settings.seed)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    settings = with_weights_own(settings, model)  # k and register left null: what these weights ask
    from .switch import load_switch
    try:   # every preset to switch to, with its weights: a mistake stops us now, not at the switch
        switch = load_switch(settings, args.preset, model)
    except PresetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    session = Session(model, settings, realtime=args.realtime, switch=switch, preset=args.preset)
    catch_stop_signals(lambda signum, reason: session.stop(reason))
    status = 0
    try:
        session.start()
        if args.learn:
            session.controls.start_learning()
        session.play(args.duration)
    except PortError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    except Exception:
        traceback.print_exc()
        session.stop("error")
        status = 1
    finally:
        session.close()
    if session.fault is not None:
        print(f"error: {session.fault}", file=sys.stderr)
    return status or (1 if session.failed else 0)


def osc_available() -> bool:
    try:
        import pythonosc  # noqa: F401
    except ImportError:
        return False
    return True
