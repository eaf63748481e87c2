"""`live-rnnrbm play`: the live instrument.

    live-rnnrbm play                                  # default preset, virtual port "live-rnnrbm"
    live-rnnrbm play --port "IAC Bus 1" --bpm 96
    live-rnnrbm play --preset jsb --input "Keystation" --mode harmonize --record session.mid
    live-rnnrbm play --clock "DAW clock" --steps-per-beat 4     # follow an external MIDI clock

This module only wires things together: settings (settings.py), ports (ports.py), the frame engine
(engine.py), the clocks (clock.py), the player's input (listener.py), live controls (controls.py)
and the recording (record.py). Whatever stops it — Ctrl-C, SIGTERM, SIGHUP, `q`, --duration, an
error, a port going away — ends in the same place: every sounding note gets its note-off, then CC64=0,
CC123 and CC120 on the channels used, then the ports close.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
from dataclasses import replace

from ..signals import catch_stop_signals


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .settings import add_setting_flags
    p.add_argument("--preset", help="preset name (default, jsb, ...) or a .yaml path; default: the shipped 'default'")
    add_setting_flags(p)  # one flag per preset key: a flag given overrides the preset, one left out does not
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: run until stopped)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="run the clock and the frame worker with real-time scheduling when the OS allows it")


def settings_from(args: argparse.Namespace):
    from .settings import flag_values, load_preset, merge
    return merge(load_preset(args.preset), flag_values(args))


def say(text: str) -> None:
    print(f"live-rnnrbm: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from .settings import PresetError
    try:
        settings = settings_from(args)
    except PresetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    external = settings.external_clock
    if args.duration is not None and not args.duration > 0:
        print("error: --duration must be > 0 seconds", file=sys.stderr)
        return 2

    # The MIDI callback, the frame worker and the clock pass the GIL between them; Python's default
    # 5 ms switch interval would let each hand-off eat into the time before the next tick.
    sys.setswitchinterval(0.0002)

    from ..data.weights import WeightsError, generation_k, load_model, resolve_weights
    from .ports import PortError, open_input, open_output
    spec = settings.weights
    if spec in ("nottingham", "jsb") and not resolve_weights(spec).exists():
        say(f"the shipped '{spec}' weights are not in this installation")
        spec = None  # load_model then falls back to an untrained model, with a warning
    try:
        model = load_model(spec, settings.seed)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if settings.k is None:  # the Gibbs steps these weights need to mix from silence
        settings = replace(settings, k=generation_k(model))
    from .clock import PPQN, ClockFollower, InternalClock
    from .controls import Controls
    from .listener import Listener
    from .midi import CLOCK, START, STOP, SYSEX
    from .realtime import CLOCK_PRIORITY, promote
    from .engine import Engine

    stop = threading.Event()
    why: list[str] = []

    def stop_because(reason: str) -> None:
        if not why:
            why.append(reason)
        stop.set()

    faults: list[str] = []

    def fault(reason: str) -> None:
        """A port, its server or the input path failed: stop as on a signal, but exit non-zero."""
        faults.append(reason)
        stop_because(reason)

    catch_stop_signals(lambda signum, reason: stop_because(reason))

    ports = []
    engine = follower = None
    listener = None
    clock_out = False
    out = None
    recorder = None
    status = 0
    try:
        out = open_output(settings.port, settings.backend)
        ports.append(out)
        backend = out.backend
        out.on_error(lambda text: fault(f"output port: {text}"))
        t0 = time.perf_counter()
        if settings.record:
            from .record import Recorder
            recorder = Recorder.from_settings(settings, start=0.0)   # times are seconds since t0
        engine = Engine(model, out.rt.send_message, settings, recorder=recorder, clock_t0=t0,
                        realtime=args.realtime)

        # the player's input and the external clock (one port may carry both)
        same = external and settings.input and settings.input == settings.clock
        if settings.input:
            listener = Listener(model.lowest_note, model.n_visible, settings.input_channel,
                                thru=out.rt.send_message if settings.thru else None,
                                recorder=recorder, t0=t0)
            engine.listener = listener
        controls = Controls(engine, settings.cc, stop)
        if listener is not None:
            listener.on_cc = controls.on_cc
        # A first start after installing compiles the kernels (Numba caches them): say so if slow.
        compiling = threading.Timer(1.5, say, ("compiling the Numba kernels: the first start after installing "
                                                "takes about 15 s, later ones about a second",))
        compiling.start()
        try:
            engine.start()   # kernels warm, frame 1 computed: everything below is quick
        finally:
            compiling.cancel()

        if external:
            follower = ClockFollower(settings.steps_per_beat, engine.tick, on_stop=engine.silence,
                                     on_tempo=(lambda bpm: recorder.tempo(time.perf_counter() - t0, bpm))
                                     if recorder else None)

        def guarded(handler):
            def receive(msg):
                try:
                    handler(msg)
                except Exception:  # a bug on the MIDI thread must stop us (every note off), not vanish
                    traceback.print_exc()
                    fault("error in the MIDI input callback")
            return receive

        if external:
            clk = open_input(settings.clock, backend, role="clock")
            ports.append(clk)
            if same:
                def both(msg):
                    (follower.receive if msg[0] >= SYSEX else listener.receive)(msg)
                clk.listen(guarded(both))
            else:
                clk.listen(guarded(follower.receive))
            clk.on_error(lambda text: fault(f"clock port: {text}"))
        if listener is not None and not same:
            inp = open_input(settings.input, backend, role="in")
            ports.append(inp)
            inp.listen(guarded(listener.receive))
            inp.on_error(lambda text: fault(f"input port: {text}"))

        if backend == "jack":
            from .jackmidi import quiet
            quiet()
        names = ", ".join(f"{'virtual ' if p.virtual else ''}'{p.name}'" for p in ports)
        if external:
            say(f"ready on {backend} ports {names}; following MIDI clock on '{ports[1].name}', "
                f"{settings.steps_per_beat} frame(s) per beat")
        else:
            say(f"playing on {backend} ports {names}; {settings.tempo:.1f} BPM, "
                f"{settings.frame_period * 1e3:.1f} ms per frame")
        rt = engine.worker_realtime.wait(2.0) and engine.worker_realtime_ok
        if not external and args.realtime:
            rt = promote(CLOCK_PRIORITY) and rt   # this thread runs the internal clock
        if args.realtime:
            say("real-time scheduling: on" if rt else
                "real-time scheduling: not permitted (timing may suffer on a busy machine; see docs/playing.md)")
        if settings.status:
            controls.start_status((lambda: follower.bpm) if external else (lambda: settings.tempo),
                                  (lambda: "clock lost" if follower.lost else "external") if external
                                  else (lambda: "internal"))
        if controls.start_keys():
            say(controls.KEYS)
        if args.duration is not None:
            threading.Timer(args.duration, stop_because, ("duration reached",)).start()

        if external:
            lost = False
            while not stop.wait(0.1):   # the clock can vanish without a Stop: silence then
                if follower.check(time.perf_counter()) != lost:
                    lost = not lost
                    say("clock lost: silent until it comes back" if lost else "clock back")
        else:
            clock_out = bool(settings.clock_out)
            pulse = [CLOCK]
            ppf = max(1, round(PPQN / settings.steps_per_beat))
            clock = InternalClock(settings.frame_period, engine.tick,
                                  on_pulse=(lambda: out.rt.send_message(pulse)) if clock_out else None,
                                  pulses_per_frame=ppf)
            if clock_out:
                out.rt.send_message([START])
            clock.run(stop)
    except PortError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    except Exception:
        traceback.print_exc()
        why.append("error")
        status = 1
    finally:
        for p in ports[1:]:
            try:
                p.rt.cancel_callback()
            except Exception:
                pass
        if engine is not None:
            # with the server gone nothing sounds any more, and RtMidi's JACK send would spin forever
            # once its queue fills: release the notes in the engine and the recording only
            dead = out is not None and out.dead
            if dead:
                engine.send = _discard
            if listener is not None and settings.thru:
                for m in listener.thru_note_offs():
                    engine.send(m)
                engine.channels |= listener.thru_channels
            engine.close()
            if clock_out and not dead:
                out.rt.send_message([STOP])
            pulses = f", {follower.pulses} clock pulses" if follower is not None else ""
            dropped = sum(p.guard.dropped for p in ports[1:])
            bad = f", {dropped} malformed message(s) dropped" if dropped else ""
            say(f"stopped ({why[0] if why else 'done'}): {engine.sent} frames, {engine.late} late{pulses}{bad}; "
                "all notes off")
            if not dead:
                time.sleep(0.1)  # JACK sends at the next period: let the last note-offs leave before closing
        for p in reversed(ports):
            p.close()
        if recorder is not None:
            try:
                say(f"recorded {recorder.save()}")
            except Exception as e:  # noqa: BLE001
                print(f"error: could not write the recording: {e}", file=sys.stderr)
                status = status or 1
    if faults:
        print(f"error: {faults[0]}", file=sys.stderr)
        status = status or 1
    return status


def _discard(msg) -> None:
    pass
