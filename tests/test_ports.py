"""What `play` and `ports` say when there is no MIDI system at all: no ALSA sequencer and no JACK
server (a container, a fresh server). The C libraries' own complaints on stderr are not shown."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["play", "--duration", "1"], ["ports"]], ids=["play", "ports"])
def test_no_alsa_sequencer_and_no_jack_server_says_what_to_do_in_two_lines(tmp_path, command):
    server = f"nothere-{os.getpid()}"
    # ALSA's library fails to start with a configuration file that is not there: on any machine,
    # the sequencer cannot be opened, as when snd-seq is not loaded
    env = dict(os.environ, PYTHONPATH=str(ROOT), JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1",
               ALSA_CONFIG_PATH=str(tmp_path / "no-such-alsa.conf"))
    r = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", *command], capture_output=True, text=True,
                       timeout=60, env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) <= 2, r.stderr
    assert lines[0].startswith("error: ")
    assert "sudo modprobe snd-seq" in r.stderr, r.stderr
    assert f"jackd -n {server} -d dummy -r 48000" in r.stderr, r.stderr
