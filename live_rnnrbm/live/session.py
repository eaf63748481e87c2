"""A performance: ``Session`` owns everything that plays — the ports (ports.py), the frame engine
(engine.py), the clocks (clock.py, link.py), the player's input (listener.py), live controls
(controls.py; OSC in osc.py; preset switching in switch.py) and the recording (record.py). Whatever
stops it — Ctrl-C, SIGTERM, SIGHUP, `q`, --duration, an error, a port going away — ends in
``Session.close``: every sounding note gets its note-off, then CC64=0, CC123 and CC120 on the
channels used, then the ports close. The command line that makes one is cli.py.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Callable, Sequence

from .midi import CLOCK, CONTINUE, SPP, START, STOP, SYSEX

if TYPE_CHECKING:  # importing this must not wait for numba: the command line imports it
    from ..model import RnnRbm
    from .clock import ClockFollower
    from .controls import Controls
    from .engine import Engine
    from .link import LinkSession
    from .listener import Listener
    from .osc import OscControl
    from .ports import Port
    from .record import Recorder
    from .settings import Settings
    from .switch import SwitchList


def say(text: str) -> None:
    print(f"live-rnnrbm: {text}", file=sys.stderr, flush=True)


class Session:
    """One performance: the output port, the input and clock ports, the engine, the listener, the
    controls, the clock (internal, or a follower of an external one) and the recording.

        session = Session(model, settings)
        try:
            session.start()     # ports open, kernels warm, frame 1 ready; says where it plays
            session.play()      # until stop(): a signal, `q`, --duration, a port failing
        finally:
            session.close()     # every note off, the ports closed, the recording written

    Each part is kept as soon as it exists, so close() ends a session that failed half-way (the
    output open, the input not) as it ends a whole one. ``open_output(name, backend)`` and
    ``open_input(name, backend, role=...)`` open the ports (ports.py's by default).
    """

    def __init__(self, model: RnnRbm, settings: Settings, realtime: bool = True,
                 open_output: Callable[..., Port] | None = None,
                 open_input: Callable[..., Port] | None = None, switch: SwitchList | None = None,
                 preset: str | None = None) -> None:
        if open_output is None or open_input is None:
            from . import ports
            open_output = open_output or ports.open_output
            open_input = open_input or ports.open_input
        self.model = model
        self.settings = settings
        self.realtime = realtime
        self.switch = switch               # the presets to switch between while playing (switch.py)
        self.preset = preset               # the preset it started with (None: the default)
        self._open_output, self._open_input = open_output, open_input
        self.stopped = threading.Event()   # set by stop(): play() returns, the controls' threads end
        self._why: list[str] = []
        self._faults: list[str] = []
        self._recording_failed = False
        self._closed = False
        self._duration_timer: threading.Timer | None = None
        self._clock_out = False            # a transport runs downstream (Start sent or forwarded): Stop at close
        self.ports: list[Port] = []        # the output first, then the clock input, then the player's
        self.out: Port | None = None
        self.engine: Engine | None = None
        self.listener: Listener | None = None
        self.controls: Controls | None = None
        self.follower: ClockFollower | None = None
        self.link: LinkSession | None = None
        self.t0 = 0.0                      # perf_counter() at the start: recording times count from it
        self.recorder: Recorder | None = None
        self.osc: OscControl | None = None

    # ------------------------------------------------------------------ stopping
    def stop(self, reason: str) -> None:
        """Stop playing; the first reason given is the one the closing line names. Any thread."""
        if not self._why:
            self._why.append(reason)
        self.stopped.set()

    def _fault(self, reason: str) -> None:
        """A port, its server or the input path failed: stop as on a signal, but exit non-zero."""
        self._faults.append(reason)
        self.stop(reason)

    @property
    def fault(self) -> str | None:
        """The first failure of a port, its server or the input path; None when there was none."""
        return self._faults[0] if self._faults else None

    @property
    def failed(self) -> bool:
        """Something went wrong that the exit status must say: a fault, or the recording not written."""
        return bool(self._faults) or self._recording_failed

    # ------------------------------------------------------------------ starting
    def start(self) -> None:
        """Open the ports, warm the kernels and compute frame 1, then say where it plays. Raises
        ports.PortError when a port cannot be opened (close() still ends what was started)."""
        from .controls import Controls
        from .engine import Engine
        from .listener import Listener
        from .realtime import CLOCK_PRIORITY, promote
        from .switch import Switcher, display_name
        settings, switch = self.settings, self.switch
        external = settings.external_clock
        out = self.out = self._open_output(settings.port, settings.backend)
        self.ports.append(out)
        out.on_error(lambda text: self._fault(f"output port: {text}"))
        t0 = self.t0 = time.perf_counter()
        if settings.record:
            from .record import Recorder
            self.recorder = Recorder.from_settings(settings, start=0.0)   # times are seconds since t0
        recorder = self.recorder
        preset = display_name(switch.names[switch.index] if switch is not None and switch.index >= 0 else self.preset)
        engine = self.engine = Engine(self.model, out.send, settings, recorder=recorder, clock_t0=t0,
                                      realtime=self.realtime, preset=preset)
        if settings.input:
            self.listener = Listener(self.model.lowest_note, self.model.n_visible, settings.input_channel,
                                     thru=out.send if settings.thru else None, recorder=recorder, t0=t0)
            engine.listener = self.listener
        controls = self.controls = Controls(engine, settings.cc, self.stopped)
        if self.listener is not None:
            self.listener.on_cc = controls.on_cc
        # A first start after installing compiles the kernels (Numba caches them): say so if slow.
        compiling = threading.Timer(1.5, say, ("compiling the Numba kernels: the first start after installing "
                                                "takes about 15 s, later ones about a second",))
        compiling.start()
        try:
            engine.start()   # kernels warm, frame 1 computed: everything below is quick
        finally:
            compiling.cancel()
        self._start_clock()
        controls.preset = self.preset   # MIDI learn saves there
        if switch is not None:
            controls.switcher = Switcher(engine, switch, self.stopped, on_error=say)
        self._open_inputs(out.backend)
        if settings.osc_port is not None:
            self._start_osc(controls, engine)

        if out.backend == "jack":
            from .jackmidi import quiet
            quiet()
        self._say_ready()
        rt = engine.worker_realtime.wait(2.0) and engine.worker_realtime_ok
        if not external and self.realtime:
            rt = promote(CLOCK_PRIORITY) and rt   # this thread runs the internal clock (play())
        if self.realtime:
            say("real-time scheduling: on" if rt else
                "real-time scheduling: not permitted (timing may suffer on a busy machine; see docs/playing.md)")
        if settings.status:
            controls.start_status(*self._tempo_and_clock_label())
        if controls.start_keys():
            say(controls.KEYS)

    def _start_clock(self) -> None:
        """The follower of an external MIDI clock, or our peer in the Link session (the internal
        clock is made by play(), on its thread)."""
        from .clock import ClockFollower
        from .ports import PortError
        settings, engine, recorder, t0 = self.settings, self.engine, self.recorder, self.t0
        if settings.external_clock:
            self.follower = ClockFollower(settings.steps_per_beat, engine.tick, on_stop=engine.silence,
                                          on_tempo=(lambda bpm: recorder.tempo(time.perf_counter() - t0, bpm))
                                          if recorder else None,
                                          swing=settings.swing)
            self.controls.clock = self.follower
        elif settings.link_clock:
            from .link import LinkSession
            try:
                self.link = LinkSession(settings.bpm, settings.link_quantum, settings.link_start_stop)
            except Exception as e:  # noqa: BLE001 -- the binding's errors are not ours to list: one line
                raise PortError(f"cannot join the Ableton Link session: {e}") from None

    def _say_ready(self) -> None:
        """The ports, and the clock we play on."""
        settings, out, link = self.settings, self.out, self.link
        names = ", ".join(f"{'virtual ' if p.virtual else ''}'{p.name}'" for p in self.ports)
        if settings.external_clock:
            say(f"ready on {out.backend} ports {names}; following MIDI clock on '{self.ports[1].name}', "
                f"{settings.steps_per_beat} frame(s) per beat")
        elif link is not None:
            peers = link.wait_for_peers(1.0)   # say what we joined: Link finds peers within a second
            say(f"ready on {out.backend} ports {names}; Ableton Link: "
                + (f"joined {peers} peer(s) at {link.tempo:.1f} BPM" if peers else
                   f"first in the session, {link.tempo:.1f} BPM")
                + f", {settings.steps_per_beat} frame(s) per beat, "
                + ("waiting for the session's transport to start" if settings.link_start_stop else
                   f"starting on the next bar of {settings.link_quantum}"))
        else:
            say(f"playing on {out.backend} ports {names}; {settings.tempo:.1f} BPM, "
                f"{settings.frame_period * 1e3:.1f} ms per frame")
        if settings.key:
            shift = self.engine.key_shift
            where = f"{abs(shift)} semitone(s) {'down' if shift < 0 else 'up'} from here" if shift else "as it is"
            say(f"in {settings.key}: the model hears and plays in C, {where}"
                + (", with its keyed player path" if self.model.has_keyed_path else ""))

    def _tempo_and_clock_label(self) -> tuple[Callable[[], float], Callable[[], str]]:
        """What the status line shows of the clock: its tempo now, and which clock it is."""
        settings, follower, link = self.settings, self.follower, self.link
        if follower is not None:
            return (lambda: follower.bpm), (lambda: "clock lost" if follower.lost else "external")
        if link is not None:
            return (lambda: link.tempo), (lambda: f"link, {link.peers} peer(s)" + ("" if link.playing else ", stopped"))
        return (lambda: settings.tempo), (lambda: "internal")

    def _start_osc(self, controls: Controls, engine: Engine) -> None:
        from .osc import OscControl
        from .ports import PortError
        host, port = self.settings.osc_host, self.settings.osc_port
        osc = OscControl(controls, engine, host, port)
        try:
            osc.start()
        except OSError as e:   # the port taken, an address not of this machine, a name that does not resolve
            raise PortError(f"cannot listen for OSC on {host}:{port}: {e.strerror or e}") from None
        self.osc = osc
        say(f"OSC on {host}:{osc.port}" + ("" if host in ("127.0.0.1", "localhost", "::1") else
                                            " (anyone who can reach this address controls the instrument)"))

    def _open_inputs(self, backend: str) -> None:
        """The external clock and the player's input; one port carries both when they are named alike."""
        settings, follower, listener = self.settings, self.follower, self.listener
        same = settings.external_clock and settings.input and settings.input == settings.clock
        if settings.external_clock:
            clk = self._open_input(settings.clock, backend, role="clock")
            self.ports.append(clk)
            follow = self._forwarding(follower.receive) if settings.clock_out else follower.receive
            if same:
                def both(msg: Sequence[int]) -> None:
                    (follow if msg[0] >= SYSEX else listener.receive)(msg)
                clk.listen(self._guarded(both))
            else:
                clk.listen(self._guarded(follow))
            clk.on_error(lambda text: self._fault(f"clock port: {text}"))
        if listener is not None and not same:
            inp = self._open_input(settings.input, backend, role="in")
            self.ports.append(inp)
            inp.listen(self._guarded(listener.receive))
            inp.on_error(lambda text: self._fault(f"input port: {text}"))

    def _forwarding(self, receive: Callable[[Sequence[int]], None]) -> Callable[[Sequence[int]], None]:
        """--clock-out following an external clock: Clock, Start, Continue, Stop and Song Position
        Pointer go on to the output the moment they arrive, before the follower ticks a frame on
        them, so gear chained behind us keeps the DAW's time and transport whether the model plays,
        is paused or is silent. The lists are made once: nothing is allocated per pulse. A running
        transport (Start or Continue forwarded, no Stop since) gets a Stop of ours at close, so the
        chained gear stops when we quit, as it does with the internal clock."""
        send = self.out.send
        pulse, start, cont, stop, spp = [CLOCK], [START], [CONTINUE], [STOP], [SPP, 0, 0]

        def forward(msg: Sequence[int]) -> None:
            status = msg[0]
            if status == CLOCK:
                send(pulse)
            elif status == START or status == CONTINUE:
                send(start if status == START else cont)
                self._clock_out = True
            elif status == STOP:
                send(stop)
                self._clock_out = False
            elif status == SPP:
                spp[1], spp[2] = msg[1], msg[2]
                send(spp)
            receive(msg)
        return forward

    def _guarded(self, handler: Callable[[Sequence[int]], None]) -> Callable[[Sequence[int]], None]:
        def receive(msg: Sequence[int]) -> None:
            try:
                handler(msg)
            except Exception:  # a bug on the MIDI thread must stop us (every note off), not vanish
                traceback.print_exc()
                self._fault("error in the MIDI input callback")
        return receive

    # ------------------------------------------------------------------ playing
    def play(self, duration: float | None = None) -> None:
        """Play until stop(), or for ``duration`` seconds: on the internal clock, which runs on
        this thread, or following the external one (ticked from its input's thread)."""
        from .clock import PPQN, InternalClock
        if duration is not None:
            self._duration_timer = threading.Timer(duration, self.stop, ("duration reached",))
            self._duration_timer.daemon = True   # a stop before the duration must not keep the process alive
            self._duration_timer.start()
        follower, out, engine = self.follower, self.out, self.engine
        if self.link is not None:
            self._play_link()
        elif self.settings.external_clock:
            lost = False
            while not self.stopped.wait(0.1):   # the clock can vanish without a Stop: silence then
                if follower.check(time.perf_counter()) != lost:
                    lost = not lost
                    say("clock lost: silent until it comes back" if lost else "clock back")
        else:
            clock_out = self._clock_out = bool(self.settings.clock_out)
            pulse = [CLOCK]
            send = out.send
            clock = InternalClock(self.settings.frame_period, engine.tick,
                                  on_pulse=(lambda: send(pulse)) if clock_out else None,
                                  pulses_per_frame=max(1, round(PPQN / self.settings.steps_per_beat)),
                                  swing=self.settings.swing)
            self.controls.clock = clock   # the swing control
            if clock_out:
                send([START])
            clock.run(self.stopped)

    def _play_link(self) -> None:
        """Frames on the Link session's grid, on this thread. With clock out, 24 pulses a beat on
        the same grid, Start when we start playing and Stop when the session's transport stops."""
        from .link import LinkClock
        settings, out, engine, recorder = self.settings, self.out, self.engine, self.recorder
        send = out.send
        pulse, start, stop = [CLOCK], [START], [STOP]
        clock_out = bool(settings.clock_out)

        def started() -> None:
            if clock_out:
                send(start)
                self._clock_out = True

        def stopped() -> None:
            engine.silence()
            if clock_out:
                send(stop)
                self._clock_out = False

        clock = LinkClock(
            self.link, settings.steps_per_beat, engine.tick, on_stop=stopped, on_start=started,
            on_pulse=(lambda: send(pulse)) if clock_out else None,
            on_tempo=(lambda bpm: recorder.tempo(time.perf_counter() - self.t0, bpm)) if recorder else None,
            swing=settings.swing)
        self.controls.clock = clock
        clock.run(self.stopped)

    # ------------------------------------------------------------------ ending
    def close(self) -> None:
        """The end, whatever stopped it: no more input; the player's echoed notes and every note the
        engine sounds get their note-off, then CC64=0, CC123, CC120 on every channel used; clock Stop
        while the clock we send or forward runs; the closing line; the ports closed; the recording
        written. Does it once; after a start that failed half-way, ends what was started."""
        if self._closed:
            return
        self._closed = True
        self.stopped.set()   # the controls' threads end too, whatever ended the session
        if self._duration_timer is not None:
            self._duration_timer.cancel()
        if self.osc is not None:
            self.osc.close()   # no control arrives while the notes are released
        if self.link is not None:
            self.link.close()  # leave the session; its other peers play on
        inputs = self.ports[1:]
        for p in inputs:
            try:
                p.stop_listening()
            except Exception:
                pass
        engine, out, listener = self.engine, self.out, self.listener
        if engine is not None:
            dead = out is not None and out.dead
            if dead:
                engine.output_gone()
            if listener is not None and self.settings.thru:
                engine.release_also(listener.thru_note_offs(), listener.thru_channels)
            engine.close()
            if self._clock_out and not dead:
                out.send([STOP])
            pulses = f", {self.follower.pulses} clock pulses" if self.follower is not None else ""
            dropped = sum(p.guard.dropped for p in inputs)
            bad = f", {dropped} malformed message(s) dropped" if dropped else ""
            lost = sum(p.lost for p in inputs)
            if lost:
                bad += f", {lost} message(s) lost (the input's queue was full)"
            if self.osc is not None and self.osc.dropped:
                bad += f", {self.osc.dropped} bad OSC message(s) dropped"
            say(f"stopped ({self._why[0] if self._why else 'done'}): {engine.sent} frames, {engine.late} late"
                f"{pulses}{bad}; all notes off")
            if not dead:
                time.sleep(0.1)  # JACK sends at the next period: let the last note-offs leave before closing
        for p in reversed(self.ports):
            p.close()
        if self.recorder is not None:
            try:
                say(f"recorded {self.recorder.save()}")
            except Exception as e:  # noqa: BLE001
                print(f"error: could not write the recording: {e}", file=sys.stderr)
                self._recording_failed = True

