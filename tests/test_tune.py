"""`live-rnnrbm tune` (Ray Tune): the search space and its file, the command's errors, and a tiny
search run to the end both on a Ray instance of its own (no cluster) and with --address on a real
local cluster (a head and one worker, started and stopped here). After each: the best trial is the
best of the scores the trials reported to Ray, best.npz is its weights file and loads, and every
trial's weights record a command that parses back, with the train parser, to that trial's
settings.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from live_rnnrbm import cli
from live_rnnrbm.data.weights import load_weights, read_meta
from live_rnnrbm.tune.space import (FLAGS, Choice, Fixed, LogUniform, RandInt, Space, SpaceError, load_space,
                                    train_flags)
from live_rnnrbm.tune.trial import train_parser

from test_train import HI, LO, write_midi_folder

pytest.importorskip("ray.tune")

RAY = str(Path(sys.executable).parent / "ray")
SPACE = """
lr: {loguniform: [3.0e-3, 3.0e-2]}
hidden: [8, 16]
recurrent: 8
k: [3, 5]
pretrain_epochs: [0, 1]
ema: [0.0, 0.9]
transpose: [[0, 0], [-2, 2]]
"""
TRAIN = ["--lowest-note", str(LO), "--highest-note", str(HI), "--batch-frames", "24", "--batch-size", "2",
         "--optimizer", "adam"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------- the space and errors


def test_space_file_overrides_the_defaults_with_typed_entries(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("lr: {loguniform: [1.0e-4, 1.0e-2]}\nhidden: [100, 150]\nk: 15\ntranspose: [-6, 5]\n"
                 "recurrent: {randint: [50, 60]}\n")
    s = load_space(f)
    assert s.lr == LogUniform(1e-4, 1e-2) and s.hidden == Choice((100, 150)) and s.k == Fixed(15)
    assert s.transpose == Fixed((-6, 5)) and s.recurrent == RandInt(50, 60)
    assert s.schedule == Space().schedule  # left out: the default
    settings = dict(lr=1e-3, schedule="cosine", weight_decay=1e-4, transpose=(-6, 5), hidden=100, recurrent=50,
                    k=15, ema=0.99, pretrain_epochs=1)
    args = train_parser().parse_args(["d", "--out", "x.npz", *train_flags(settings)])
    assert (args.lr, args.schedule, args.weight_decay, tuple(args.transpose), args.hidden, args.recurrent, args.k,
            args.ema, args.pretrain_epochs) == tuple(settings.values())


@pytest.mark.parametrize("text, message", [
    ("lr: {loguniform: [1.0e-2, 1.0e-4]}", "lr: loguniform needs [low, high] with 0 < low < high"),
    ("lr: -1", "lr: each value must be a number > 0, not -1"),
    ("hidden: {loguniform: [10, 20]}", "hidden: takes randint, a list of values or one value, not loguniform"),
    ("hidden: [100, 1.5]", "hidden: each value must be a whole number ≥ 1, not 1.5"),
    ("schedule: [cosine, linear]", "schedule: each value must be constant, cosine or plateau, not 'linear'"),
    ("transpose: [[0, 0], [3, -3]]", "transpose: each value must be a pair [MIN, MAX]"),
    ("ema: {normal: [0, 1]}", "ema: a distribution is one of loguniform, uniform, randint"),
    ("momentum: 0.9", "unknown key 'momentum'; the keys are lr, schedule"),
    ("k: []", "k: an empty list of values"),
])
def test_a_bad_space_entry_is_one_line_naming_the_key(tmp_path, capsys, text, message):
    f = tmp_path / "s.yaml"
    f.write_text(text + "\n")
    with pytest.raises(SpaceError, match=None) as e:
        load_space(f)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
    code, err = run(capsys, "tune", str(tmp_path), "--out", str(tmp_path / "o"), "--space", str(f))
    assert code == 2 and err.startswith(f"error: --space {f}: ") and err.count("\n") == 1, err


def test_tune_command_errors(tmp_path, capsys):
    base = ["tune", str(tmp_path), "--out", str(tmp_path / "o")]
    code, err = run(capsys, *base, "--", "--lr", "0.1")
    assert code == 2 and err == ("error: --lr is searched: fix it in the space instead "
                                 "(--space FILE with 'lr: VALUE')\n"), err
    code, err = run(capsys, *base, "--", "--out", "x.npz")
    assert code == 2 and err == "error: --out after -- : tune sets it for every trial\n", err
    code, err = run(capsys, *base, "--", "--batch-size", "two")
    assert code == 2 and err == "error: the train flags after --: argument --batch-size: invalid int value: 'two'\n"
    code, err = run(capsys, *base, "--samples", "0", "--grace", "0")
    assert code == 2 and err == "error: --samples must be ≥ 1, not 0; --grace must be ≥ 1, not 0\n", err
    code, err = run(capsys, "tune", str(tmp_path / "nosuch"), "--out", str(tmp_path / "o"))
    assert code == 2 and err == f"error: {tmp_path / 'nosuch'}: no such file or folder\n", err
    assert not (tmp_path / "o").exists()  # nothing started


def test_paths_after_the_double_dash_are_made_absolute(tmp_path, monkeypatch):
    from live_rnnrbm.tune.cli import _absolute
    monkeypatch.chdir(tmp_path)
    got = _absolute(["--valid", "a", "b", "--k", "5", "--init", "w.npz", "--transpose", "-6", "5",
                     "--valid=c", "--init=d/w.npz", "--seed", "3"])
    assert got == ["--valid", str(tmp_path / "a"), str(tmp_path / "b"), "--k", "5", "--init", str(tmp_path / "w.npz"),
                   "--transpose", "-6", "5", f"--valid={tmp_path / 'c'}", f"--init={tmp_path / 'd/w.npz'}", "--seed", "3"]


def test_without_ray_the_extra_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    code, err = run(capsys, "tune", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == 2 and err == 'error: live-rnnrbm tune needs Ray Tune: pip install "live-rnnrbm[tune]"\n', err


# --------------------------------------------------------------------------- whole searches


def short_tmp(prefix: str) -> Path:
    # Ray's unix sockets live under its temp dir, and their paths must stay under 108 bytes
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


def ray_env(ray_tmp: Path) -> dict[str, str]:
    # Ray's files in a folder of the test's own; its clusters' token authentication with a token
    # of the test's own (Ray would otherwise write one to ~/.ray and read it from there)
    return dict(os.environ, RAY_TMPDIR=str(ray_tmp), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                RAY_AUTH_TOKEN=secrets.token_hex(32))


def tune(tmp_path: Path, env: dict[str, str], *extra: str, samples: int = 3, epochs: int = 2) -> tuple[Path, float]:
    """Run `live-rnnrbm tune` as a user does, in a process of its own; its output folder and seconds."""
    data, out = tmp_path / "data", tmp_path / "out"
    write_midi_folder(data, n=8)
    (tmp_path / "space.yaml").write_text(SPACE)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "tune", str(data), "--out", str(out),
                        "--samples", str(samples), "--epochs", str(epochs), "--grace", "1",
                        "--space", str(tmp_path / "space.yaml"), *extra],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    assert f"→ {out / 'best.npz'}" in p.stdout
    return out, seconds


def check_search(out: Path, samples: int, epochs: int, ais: bool) -> None:
    report = json.loads((out / "report.json").read_text())
    assert len(report["trials"]) == samples
    # what each trial reported to Ray, read from Ray's own result files
    reported = {}
    for f in (out / "ray").glob("*/result.json"):
        lines = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        reported[lines[0]["trial_id"]] = lines
    assert set(reported) == {t["trial"] for t in report["trials"]}
    best_id = max(reported, key=lambda t: max(r["score"] for r in reported[t]))
    assert report["best"]["trial"] == best_id
    for t in report["trials"]:
        lines = reported[t["trial"]]
        assert t["best_score"] == max(r["score"] for r in lines)
        assert [r["epoch"] for r in lines] == list(range(1, len(lines) + 1))
        assert t["epochs_run"] == len(lines) and t["stopped_early"] == (len(lines) < epochs)
        # the trial's weights: those of its best validation, recording the command that made them
        meta = read_meta(t["weights"])
        assert meta["validation"]["score"] == t["best_score"]
        assert ("log_likelihood" in meta["validation"]) == ais
        assert meta["command"] == t["command"]
        words = shlex.split(meta["command"])
        assert words[:2] == ["live-rnnrbm", "train"]
        args = train_parser().parse_args(words[2:])
        s = t["settings"]
        assert (args.lr, args.schedule, args.weight_decay, list(args.transpose), args.hidden, args.recurrent,
                args.k, args.ema, args.pretrain_epochs) == tuple(s[k] for k in FLAGS)
        assert 3e-3 <= s["lr"] <= 3e-2 and s["hidden"] in (8, 16) and s["recurrent"] == 8
        assert Path(args.out) == Path(t["weights"]) and args.epochs == epochs and args.data == [str(out.parent / "data")]
        assert meta["training"]["n_hidden"] == s["hidden"] and meta["training"]["lr"] == s["lr"]
    assert (out / "best.npz").read_bytes() == Path(report["best"]["weights"]).read_bytes()
    model = load_weights(out / "best.npz")
    assert model.n_hidden == report["best"]["settings"]["hidden"] and model.n_visible == HI - LO + 1
    assert np.isfinite(model.params["W"]).all()


def test_tune_on_this_machine(tmp_path):
    ray_tmp = short_tmp("rtl")
    try:
        out, seconds = tune(tmp_path, ray_env(ray_tmp), "--", *TRAIN, "--ais-every", "0")
        check_search(out, 3, 2, ais=False)
        assert not processes_mentioning(str(ray_tmp)), "Ray processes left running"
    finally:
        subprocess.run(["rm", "-rf", str(ray_tmp)])
    print(f"tune, 3 trials of 2 epochs, on its own Ray instance: {seconds:.1f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_node(p: subprocess.Popen) -> None:
    """Stop a `ray start --block` and every process it started: SIGTERM to it alone (it drains the
    node, then stops its processes), SIGKILL to its session (nobody else's) if it has not in 60 s."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_tune_on_a_local_cluster(tmp_path):
    ray_tmp, port = short_tmp("rtc"), free_port()
    address = f"127.0.0.1:{port}"
    env = ray_env(ray_tmp)
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
    nodes: list[subprocess.Popen] = []
    logs: list[Path] = []

    def said() -> str:
        return "".join(f"--- {f.name}\n" + f.read_text()[-2000:] for f in logs)

    def start(name: str, cpus: int, *argv: str) -> None:
        """Start a node and wait until the cluster has ``cpus`` CPUs. Ray gives a node 30 s to
        register (hard-coded): on a loaded machine it may give up, and is then started again."""
        for attempt in range(3):
            logs.append(tmp_path / f"{name}-{attempt}.log")
            with open(logs[-1], "w") as log:
                nodes.append(subprocess.Popen([RAY, "start", *argv, *common], env=env, start_new_session=True,
                                              stdout=log, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 180
            while nodes[-1].poll() is None:
                st = subprocess.run([RAY, "status", "--address", address], env=env, capture_output=True, text=True)
                if f"/{cpus}.0 CPU" in st.stdout:
                    return
                assert time.monotonic() < deadline, st.stdout + st.stderr[-2000:] + said()
                time.sleep(2)
            stop_node(nodes.pop())
        raise AssertionError(f"the Ray {name} did not start\n" + said())

    try:
        start("head", 1, "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(ray_tmp))
        start("worker", 2, "--address", address)  # once the head is up: a worker started before gives up
        out, seconds = tune(tmp_path, env, "--address", address, "--",
                            *TRAIN, "--ais-chains", "4", "--ais-steps", "10")
        check_search(out, 3, 2, ais=True)
        assert all(p.poll() is None for p in nodes)  # the cluster outlives the search
    finally:
        for p in reversed(nodes):  # the worker first
            stop_node(p)
        left = processes_mentioning(str(ray_tmp))
        subprocess.run(["rm", "-rf", str(ray_tmp)])
    assert not left, f"Ray processes left running: {left}"
    print(f"tune, 3 trials of 2 epochs, on a head and a worker: {seconds:.1f} s")
