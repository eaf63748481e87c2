"""A second Ableton Link peer for the tests, in its own process, on aalink's own session object.

    python tests/linkpeer.py BPM [--start-stop]

Reads commands on stdin, one a line: `tempo X` (publish a tempo change), `start` (start the
transport with beat 0 now, as a DAW's play button does), `stop`, `quit`. Writes a line every
5 ms: `perf_counter beat tempo playing peers` — perf_counter is CLOCK_MONOTONIC, the same clock
in every process of the machine, so the test can read off this peer's beat at the moment a note
arrived in its own process.
"""
from __future__ import annotations

import asyncio
import sys
import time


async def main(bpm: float, start_stop: bool) -> None:
    from aalink import Link
    link = Link(bpm)
    link.quantum = 4
    link.start_stop_sync_enabled = start_stop
    link.enabled = True
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.split())
        loop.call_soon_threadsafe(commands.put_nowait, ["quit"])

    loop.run_in_executor(None, read_stdin)
    while True:
        while not commands.empty():
            cmd = commands.get_nowait()
            if not cmd:
                continue
            if cmd[0] == "tempo":
                link.tempo = float(cmd[1])
            elif cmd[0] in ("start", "stop"):
                link.set_is_playing_and_request_beat_at_time(cmd[0] == "start", link.time, 0)
            elif cmd[0] == "quit":
                link.enabled = False
                return
        t0 = time.perf_counter()
        beat = link.beat
        t1 = time.perf_counter()
        print(f"{0.5 * (t0 + t1):.6f} {beat:.6f} {link.tempo:.4f} {int(link.playing)} {link.num_peers}", flush=True)
        await asyncio.sleep(0.005)


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]), "--start-stop" in sys.argv[2:]))
    sys.exit(0)
