"""MIDI ports: list them, and open an output or input by name — an existing port whose name
contains NAME, else a virtual port called NAME.

    live-rnnrbm ports                    # inputs and outputs with their exact names
    live-rnnrbm ports --backend jack

    out = open_output("IAC", backend=None)   # a Port: .name (what was opened), .virtual, .backend
    out.send([0x90, 60, 80])
    inp = open_input("Keystation")
    inp.listen(print)                        # well-formed messages only
    inp.stop_listening()
    inp.close(); out.close()

python-rtmidi is used directly (mido's rtmidi backend is a thin layer over the same objects): the
live path sends preallocated byte lists with ``MidiOut.send_message`` and the input callback gets
raw bytes on the backend's thread, without a mido.Message allocated per clock pulse.

Every input goes through ``Port.listen``, which hands on only messages a MessageGuard (midi.py)
accepts: nothing malformed reaches the listener, the clock follower or --thru. On JACK, inputs are
read with libjack directly (jackmidi.py: RtMidi's JACK input goes deaf after a truncated SysEx,
and a JACK callback in Python loses events whenever Python's GIL is busy), and the output port comes
with a port-less client that hears the server shut down.

JACK: python-rtmidi makes every port its own JACK client, and a client activated while others
come and go can hang in its first cycle; opening therefore runs in a helper thread with a time
limit and fails with a clear message instead of hanging. The server is the one libjack picks:
``JACK_DEFAULT_SERVER`` (else "default"); we never auto-start a server.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import rtmidi

from .midi import MessageGuard

BACKENDS = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK,
            "coremidi": rtmidi.API_MACOSX_CORE, "winmm": rtmidi.API_WINDOWS_MM}
OPEN_TIMEOUT = 5.0  # seconds a port may take to come up before we call it hung

# a JACK client must never start a server of its own (it would be a stray jackd nobody stops)
os.environ.setdefault("JACK_NO_START_SERVER", "1")


class PortError(Exception):
    """A port could not be found or opened; the message says what to do."""


class NoMidiSystem(PortError):
    """The backend's MIDI system itself is not there (no ALSA sequencer, no JACK server)."""

    def __init__(self, message: str, backend: str) -> None:
        super().__init__(message)
        self.backend = backend


def jackd_command() -> str:
    """The command that starts the JACK server libjack connects to, on the dummy driver (no sound
    card needed); ``-d alsa`` instead drives a sound card."""
    name = server_name()
    return "jackd " + (f"-n {name} " if name != "default" else "") + "-d dummy -r 48000"


@contextlib.contextmanager
def _quiet_c_libraries() -> Iterator[None]:
    """The ALSA and JACK C libraries report a failure to connect on file descriptor 2 themselves
    (five lines such as "ALSA lib seq_hw.c:466:(snd_seq_hw_open) open /dev/snd/seq failed"), which
    Python cannot catch: fd 2 goes to a file while a backend is probed. What they wrote is dropped
    when the probe fails (our own message says what to do) and given back when it succeeds."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (a detached process): nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            raise
        else:
            os.dup2(saved, 2)
            caught.seek(0)
            said = caught.read()
            if said:
                os.write(2, said)
        finally:
            os.close(saved)


@dataclass
class Port:
    """An open MIDI port. Only this module touches the backend's object (``rt``): everyone else
    sends, listens, stops listening and closes through the port."""
    rt: Any            # rtmidi.MidiOut, rtmidi.MidiIn, or jackmidi.JackMidiIn
    name: str          # what we opened: the existing port's name, or our virtual port's name
    virtual: bool
    backend: str
    watch: Any = None  # JACK output: a port-less jackmidi.JackClient that hears the server shut down
    guard: MessageGuard = field(default_factory=MessageGuard)
    # send(message): an output's send, the message a list of bytes; an input has none
    send: Callable[[Sequence[int]], None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The backend's own method, not a method of ours calling it: the tick sends every note
        # through this, and a Python layer in between would cost a call per message.
        if hasattr(self.rt, "send_message"):
            self.send = self.rt.send_message

    def listen(self, handler: Callable[[Sequence[int]], None]) -> None:
        """Call handler(message) for every well-formed message that arrives; drop the rest."""
        accept = self.guard.accept

        def callback(event, data=None):
            msg = event[0]
            if accept(msg):
                handler(msg)
        self.rt.set_callback(callback)

    def stop_listening(self) -> None:
        """No more calls to the handler given to listen()."""
        self.rt.cancel_callback()

    def on_error(self, fn: Callable[[str], None]) -> None:
        """fn(text) when the port or its server fails (an error from the backend, JACK shutting down)."""
        for obj in (self.rt, self.watch):
            if obj is not None:
                obj.set_error_callback(lambda kind, msg, data=None: fn(msg))

    @property
    def lost(self) -> int:
        """Messages an input could not keep (its queue full: the reader stalled for seconds)."""
        return getattr(self.rt, "lost", 0)

    @property
    def dead(self) -> bool:
        """The JACK server this port was on has shut down: nothing sent now goes anywhere."""
        return any(getattr(obj, "dead", False) for obj in (self.rt, self.watch))

    def close(self) -> None:
        for obj in (self.rt, self.watch):
            if obj is None:
                continue
            try:
                if hasattr(obj, "close_port"):
                    obj.close_port()
                obj.delete()
            except Exception:
                pass


def default_backend() -> str:
    if sys.platform == "darwin":
        return "coremidi"
    if sys.platform.startswith("win"):
        return "winmm"
    return "alsa"


def server_name() -> str:
    """The JACK server libjack connects to."""
    return os.environ.get("JACK_DEFAULT_SERVER") or "default"


def _with_timeout(fn, what: str, backend: str, timeout: float = OPEN_TIMEOUT):
    """Run fn() in a daemon thread; a JACK client that hangs in its first cycle must not hang us."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below in the caller's thread
            box["error"] = e

    th = threading.Thread(target=target, name=f"open {what}", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        hint = (f" on JACK server '{server_name()}' (a client can hang in its first cycle while other "
                "clients start or stop: try again, starting live-rnnrbm before the other programs)"
                if backend == "jack" else "")
        raise PortError(f"{what} did not come up within {timeout:.0f} s{hint}")
    if "error" in box:
        e = box["error"]
        if isinstance(e, PortError):
            raise e
        raise PortError(f"{what}: {e}") from e
    return box["value"]


def _new(kind: str, backend: str, client_name: str):
    api = BACKENDS[backend]
    cls = rtmidi.MidiOut if kind == "output" else rtmidi.MidiIn
    try:
        return cls(rtapi=api, name=client_name)
    except Exception as e:
        if backend == "jack":
            raise NoMidiSystem(f"no JACK server named '{server_name()}' is running (start one: `{jackd_command()}`, "
                               "or `-d alsa` for a sound card; JACK_DEFAULT_SERVER picks another server)",
                               backend) from None
        if backend == "alsa":
            raise NoMidiSystem("no ALSA sequencer (load it: `sudo modprobe snd-seq`; or use --backend jack)",
                               backend) from None
        raise NoMidiSystem(f"cannot open the {backend} MIDI system: {e}", backend) from None


def _all_failed(errors: list[PortError]) -> PortError:
    """One error for every backend tried: on Linux with neither ALSA's sequencer nor a JACK
    server, what to do about either, in two lines."""
    if len(errors) > 1 and all(isinstance(e, NoMidiSystem) for e in errors):
        return PortError("no MIDI system to play on: no ALSA sequencer, and no JACK server named "
                         f"'{server_name()}' running.\nLoad the sequencer with `sudo modprobe snd-seq`, or start "
                         f"a JACK server: `{jackd_command()}` (no sound card needed) or `jackd -d alsa`.")
    return errors[0] if len(errors) == 1 else PortError("; ".join(map(str, errors)))


def _backends_to_try(backend: str | None) -> list[str]:
    if backend:
        if backend not in BACKENDS:
            raise PortError(f"unknown backend '{backend}': allowed are {', '.join(BACKENDS)}")
        return [backend]
    first = default_backend()
    # Linux without an ALSA sequencer (containers, JACK-only setups): fall back to a running JACK
    return [first, "jack"] if first == "alsa" else [first]


def _open(kind: str, name: str, backend: str | None, client_name: str, port_name: str,
          timeout: float) -> Port:
    errors: list[PortError] = []
    for b in _backends_to_try(backend):
        try:
            with _quiet_c_libraries():
                return _with_timeout(lambda: _open_on(kind, name, b, client_name, port_name),
                                     f"MIDI {kind} '{name}'", b, timeout)
        except PortError as e:
            errors.append(e)
    raise _all_failed(errors)


def _open_on(kind: str, name: str, backend: str, client_name: str, port_name: str) -> Port:
    if backend == "jack" and kind == "input":
        return _open_jack_input(name, client_name, port_name)
    rt = _new(kind, backend, client_name)
    ports = rt.get_ports()
    match = [i for i, p in enumerate(ports) if name.lower() in p.lower()]  # (this client has no port yet)
    if match:
        rt.open_port(match[0], port_name)
        port = Port(rt, ports[match[0]], False, backend)
    elif backend == "winmm":
        rt.delete()
        raise PortError(f"no MIDI {kind} named like '{name}', and Windows has no virtual ports: install a "
                        "loopback driver (loopMIDI, https://www.tobias-erichsen.de/software/loopmidi.html), "
                        f"create a port, and pass its name. Available: {', '.join(ports) or 'none'}")
    else:
        rt.open_virtual_port(port_name)
        port = Port(rt, f"{client_name}:{port_name}" if backend == "jack" else port_name, True, backend)
    if backend == "jack":
        from .jackmidi import JackClient, JackError
        try:
            port.watch = JackClient(f"{client_name}-watch")
            port.watch.activate()
        except JackError as e:
            port.close()
            raise PortError(str(e)) from None
    return port


def _open_jack_input(name: str, client_name: str, port_name: str) -> Port:
    from .jackmidi import JackError, JackMidiIn
    try:
        rt = JackMidiIn(client_name, port_name)
    except JackError as e:
        raise PortError(f"{e} (is a JACK server named '{server_name()}' running? JACK_DEFAULT_SERVER picks "
                        "another)") from None
    match = [p for p in rt.output_ports() if name.lower() in p.lower()]
    if not match:
        return Port(rt, rt.name, True, "jack")
    try:
        rt.connect_from(match[0])
    except JackError as e:
        rt.delete()
        raise PortError(str(e)) from None
    return Port(rt, match[0], False, "jack")


def open_output(name: str, backend: str | None = None, timeout: float = OPEN_TIMEOUT) -> Port:
    """An existing output whose name contains ``name`` (case-insensitive), else a virtual output
    port: JACK client ``name``, port ``out``."""
    return _open("output", name, backend, client_name=name, port_name="out", timeout=timeout)


def open_input(name: str, backend: str | None = None, role: str = "in", timeout: float = OPEN_TIMEOUT) -> Port:
    """An existing input source whose name contains ``name``, else a virtual input port called
    ``name`` (JACK client ``name``, port ``role``). Clock, sysex and active sensing are delivered
    (the clock follower needs them)."""
    p = _open("input", name, backend, client_name=name, port_name=role, timeout=timeout)
    if hasattr(p.rt, "ignore_types"):
        p.rt.ignore_types(sysex=True, timing=False, active_sense=True)
    return p


def list_ports(backend: str | None = None) -> tuple[str, list[str], list[str]]:
    """(backend used, input names, output names)."""
    errors: list[PortError] = []
    for b in _backends_to_try(backend):
        try:
            def both():
                mi, mo = _new("input", b, "live-rnnrbm-ports"), _new("output", b, "live-rnnrbm-ports")
                try:
                    return mi.get_ports(), mo.get_ports()
                finally:
                    mi.delete()
                    mo.delete()
            with _quiet_c_libraries():
                ins, outs = _with_timeout(both, "port listing", b)
            return b, ins, outs
        except PortError as e:
            errors.append(e)
    raise _all_failed(errors)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                   help=f"MIDI system (default: the OS one, {default_backend()}"
                        + (", else JACK)" if default_backend() == "alsa" else ")"))


def run(args: argparse.Namespace) -> int:
    try:
        backend, ins, outs = list_ports(args.backend)
    except PortError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    where = f" (server '{server_name()}')" if backend == "jack" else ""
    print(f"backend: {backend}{where}")
    print("inputs (use with --input / --clock):")
    for n in ins:
        print(f"  {n}")
    if not ins:
        print("  (none)")
    print("outputs (use with --port):")
    for n in outs:
        print(f"  {n}")
    if not outs:
        print("  (none)")
    return 0
