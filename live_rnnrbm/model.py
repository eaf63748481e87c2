"""The RNN-RBM (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012) as one small class.

    v_t ∈ {0,1}^n_v   the piano-roll frame (notes ``lowest_note`` .. ``highest_note``)
    h_t ∈ {0,1}^n_h   the RBM's hidden units
    u_t ∈ R^n_u       the RNN state, u_0 = 0

    bv_t = bv + u_{t-1}·Wuv      bh_t = bh + u_{t-1}·Wuh
    u_t  = tanh(bu + v_t·Wvu + u_{t-1}·Wuu)

and, when a player plays along holding the notes p_t, the player path:

    bv_t += p_t·Wpv + q_{t-1}·Wqv     bh_t += p_t·Wph + q_{t-1}·Wqh     u_t = tanh(… + p_t·Wpu)

where q_t, the player's trace, is what the player played lately by pitch class at a few fixed time
scales (``kernels.forward.trace_step``): a state of the player's notes alone, q_0 = 0.

The numbers live in ``kernels``; this class holds the eight parameters, their sizes and the
random stream, and offers the operations a caller wants in a form that is hard to misuse.

>>> model = RnnRbm(seed=1)
>>> roll = model.generate(16, k=25)
>>> roll.shape
(16, 88)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernels import bptt, forward, gibbs, packed
from .kernels.forward import N_TRACE
from .kernels.register import biased_bv, new_register_state, register_hear
from .kernels.rng import new_state, new_states, next_u64

PARAM_NAMES = ("W", "bv", "bh", "Wuh", "Wuv", "Wvu", "Wuu", "bu")
# The player path: the notes a player holds, p_t, into the biases of frame t's RBM,
# bv_t += p_t·Wpv and bh_t += p_t·Wph, and into the RNN state, u_t = tanh(… + p_t·Wpu), so that
# what the player played keeps shaping the frames after it. Zero in a file that has none (or
# part) and whenever nobody plays, so the eight parameters alone are the paper's model. Wqv and Wqh
# carry the player's trace q_{t-1}: the player's recent notes, a state the model's own guesses never
# reach, so what it says about the key and the harmony survives an accompaniment that has wandered.
PLAYER_PARAM_NAMES = ("Wpv", "Wph", "Wpu", "Wqv", "Wqh")
ALL_PARAM_NAMES = PARAM_NAMES + PLAYER_PARAM_NAMES
# A second player path, learned with every piece in C (``train --keyed-path``): the one the
# instrument plays with when told the key (live/keyed.py moves the notes into C), where a path
# learned in every key would spend itself on telling the keys apart. Absent from most files.
KEYED_PARAM_NAMES = tuple("keyed." + n for n in PLAYER_PARAM_NAMES)
FILE_PARAM_NAMES = ALL_PARAM_NAMES + KEYED_PARAM_NAMES  # every parameter array a weights file may hold

LOWEST_NOTE = 21  # A0: the 88-key piano, as in the paper's benchmarks
HIGHEST_NOTE = 108  # C8


def param_shapes(n_visible: int, n_hidden: int, n_hidden_recurrent: int) -> dict[str, tuple]:
    """The shape of each parameter for the given sizes (the weights-file loader checks these)."""
    n_v, n_h, n_u = n_visible, n_hidden, n_hidden_recurrent
    return {"W": (n_v, n_h), "bv": (n_v,), "bh": (n_h,), "Wuh": (n_u, n_h),
            "Wuv": (n_u, n_v), "Wvu": (n_v, n_u), "Wuu": (n_u, n_u), "bu": (n_u,),
            "Wpv": (n_v, n_v), "Wph": (n_v, n_h), "Wpu": (n_v, n_u), "Wqv": (N_TRACE, n_v), "Wqh": (N_TRACE, n_h)}


def keyed_shapes(n_visible: int, n_hidden: int, n_hidden_recurrent: int) -> dict[str, tuple]:
    """The shapes of the keyed player path's parameters (``KEYED_PARAM_NAMES``)."""
    shapes = param_shapes(n_visible, n_hidden, n_hidden_recurrent)
    return {k: shapes[n] for k, n in zip(KEYED_PARAM_NAMES, PLAYER_PARAM_NAMES)}


@dataclass
class RnnRbm:
    """An RNN-RBM over MIDI notes ``lowest_note..highest_note`` (inclusive).

    Initialised as the tutorial does: W ~ N(0, 0.01), the RNN matrices ~ N(0, 1e-4), biases 0
    (the tutorial's 0.01 and 0.0001 are standard deviations). ``seed`` fixes both the
    initialisation and the sampling stream, so a seed reproduces a piece.
    """

    n_hidden: int = 150
    n_hidden_recurrent: int = 100
    lowest_note: int = LOWEST_NOTE
    highest_note: int = HIGHEST_NOTE
    seed: int = 0
    dtype: Any = np.float32
    params: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.lowest_note <= self.highest_note <= 127:
            raise ValueError(f"note range {self.lowest_note}..{self.highest_note} is not within MIDI 0..127")
        self.dtype = np.dtype(self.dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, not {self.dtype}")
        shapes = param_shapes(self.n_visible, self.n_hidden, self.n_hidden_recurrent)
        if self.params is None:
            rng = np.random.default_rng(self.seed)
            std = {"W": 0.01, "Wuh": 1e-4, "Wuv": 1e-4, "Wvu": 1e-4, "Wuu": 1e-4}
            self.params = {name: (rng.normal(0.0, std[name], shape) if name in std else np.zeros(shape))
                           for name, shape in shapes.items()}
        for name in PLAYER_PARAM_NAMES:  # a model (or file) from before the player path: none
            self.params.setdefault(name, np.zeros(shapes[name]))
        shapes.update({k: v for k, v in keyed_shapes(self.n_visible, self.n_hidden, self.n_hidden_recurrent).items()
                       if k in self.params})
        for name, shape in shapes.items():
            self.params[name] = packed.aligned(np.asarray(self.params[name], dtype=self.dtype))
            if self.params[name].shape != shape:
                raise ValueError(f"parameter {name} has shape {self.params[name].shape}, expected {shape}")
        self.rng_state = new_state(self.seed)

    # -- sizes and parameters -------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.highest_note - self.lowest_note + 1

    def __getattr__(self, name: str) -> np.ndarray:
        # model.W, model.bv, ... read the parameter arrays (dataclass fields come first)
        params = self.__dict__.get("params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(name)

    @property
    def WT(self) -> np.ndarray:
        """W transposed and contiguous: row j is hidden unit j's weights (h·Wᵀ = sum of rows)."""
        return packed.aligned(self.params["W"].T)

    def astype(self, dtype: Any) -> "RnnRbm":
        """A copy with parameters in another float type (same seed and metadata)."""
        return RnnRbm(self.n_hidden, self.n_hidden_recurrent, self.lowest_note, self.highest_note,
                      self.seed, dtype, {k: v.copy() for k, v in self.params.items()}, dict(self.meta))

    @property
    def has_keyed_path(self) -> bool:
        return KEYED_PARAM_NAMES[0] in self.params

    def keyed(self) -> "RnnRbm":
        """The model the instrument plays told the key: the keyed player path in place of the
        player path, the eight parameters shared (this model itself when it has no keyed path)."""
        if not self.has_keyed_path:
            return self
        params = {n: self.params[n] for n in PARAM_NAMES}
        params.update({n: self.params[k] for n, k in zip(PLAYER_PARAM_NAMES, KEYED_PARAM_NAMES)})
        return RnnRbm(self.n_hidden, self.n_hidden_recurrent, self.lowest_note, self.highest_note, self.seed,
                      self.dtype, params, self.meta)

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream (parameters untouched)."""
        self.seed = int(seed)
        self.rng_state = new_state(self.seed)

    def initial_state(self) -> np.ndarray:
        """u_0 = 0."""
        return np.zeros(self.n_hidden_recurrent, self.dtype)

    @property
    def pitch_classes(self) -> np.ndarray:
        """Each note's pitch class (0 = C), as the player's trace folds the notes."""
        return (np.arange(self.n_visible) + self.lowest_note) % 12

    def trace(self, player: np.ndarray) -> np.ndarray:
        """The player's trace over the notes a player holds (T × n_v): Q (T+1 × N_TRACE), Q[t] =
        q_{t-1}, what frame t hears (Q[0] = q_0 = 0, Q[T] the trace after the last frame)."""
        Pl = self._frames(player)
        Q = np.empty((len(Pl) + 1, N_TRACE), self.dtype)
        forward.player_trace(Pl, self.pitch_classes, Q)
        return Q

    def states(self, roll: np.ndarray, player: np.ndarray) -> np.ndarray:
        """The live states along a piece's true frames: S (T+1 × n_u + N_TRACE), S[t] = [u_{t-1} |
        q_{t-1}], what frame t hears when the history is the true one (S[0] = s_0 = 0)."""
        return np.hstack([self.run(roll, player=player)[0], self.trace(player)])

    def _beta(self, temperature: float) -> Any:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        return self.dtype.type(1.0 / temperature)

    def _frames(self, roll: np.ndarray) -> np.ndarray:
        roll = np.ascontiguousarray(roll, dtype=self.dtype)
        if roll.ndim != 2 or roll.shape[1] != self.n_visible:
            raise ValueError(f"expected a piano-roll of shape (frames, {self.n_visible}), got {roll.shape}")
        return roll

    # -- the RNN --------------------------------------------------------------------------
    def run(self, roll: np.ndarray, u0: np.ndarray | None = None, player: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the RNN over a piano-roll (T × n_v) with its true frames, and the notes a player
        holds in each (``player``, T × n_v), if any.

        Returns (U, BV, BH): U[t] is u_{t-1} for frame t (U[0] = u0, U[T] the state after the
        last frame); BV[t], BH[t] are the biases bv_t, bh_t of frame t's RBM, with the player
        path's terms (the player's trace from q_0 = 0).
        """
        V = self._frames(roll)
        Pl = self._player(player)
        T = V.shape[0]
        u0 = self.initial_state() if u0 is None else np.asarray(u0, self.dtype)
        U = np.empty((T + 1, self.n_hidden_recurrent), self.dtype)
        BV = np.empty((T, self.n_visible), self.dtype)
        BH = np.empty((T, self.n_hidden), self.dtype)
        p = self.params
        forward.rnn_forward(V, Pl, u0, p["bv"], p["bh"], p["Wuv"], p["Wuh"], p["bu"], p["Wvu"], p["Wpu"], p["Wuu"],
                            U, BV, BH)
        if len(Pl):
            Q = self.trace(Pl)[:T]
            BV += Pl @ p["Wpv"] + Q @ p["Wqv"]
            BH += Pl @ p["Wph"] + Q @ p["Wqh"]
        return U, BV, BH

    def _player(self, player: np.ndarray | None) -> np.ndarray:
        return np.zeros((0, self.n_visible), self.dtype) if player is None else self._frames(player)

    def free_energy(self, roll: np.ndarray, u0: np.ndarray | None = None) -> np.ndarray:
        """F_t(v_t) of every frame of a piano-roll, each under its own conditional RBM."""
        V = self._frames(roll)
        _, BV, BH = self.run(V, u0)
        work = np.empty(self.n_hidden, self.dtype)
        return np.array([forward.free_energy(V[t], self.params["W"], BV[t], BH[t], work)
                         for t in range(V.shape[0])])

    # -- generation -----------------------------------------------------------------------
    def generate(self, n_frames: int, k: int = 25, temperature: float = 1.0,
                 primer: np.ndarray | None = None, return_probabilities: bool = False, density: float = 1.0,
                 register: float = 0.0):
        """Generate ``n_frames`` frames (n_frames × n_v, 0/1 float array).

        With a ``primer`` piano-roll, the RNN first runs over it and the piece continues it (the
        primer itself is not returned). Each frame is the end of a k-step Gibbs chain started
        from silence with the biases given by u_{t-1}, as in the tutorial. ``density`` multiplies
        every note's odds (bv + log density), as the instrument's density control does;
        ``register`` > 0 holds the piece's register, that many semitones wide (``kernels.register``),
        the primer's notes heard first.
        """
        if n_frames < 0 or k < 1 or not density > 0 or not register >= 0:
            raise ValueError("n_frames must be ≥ 0, k ≥ 1, density > 0 and register ≥ 0")
        u0 = self.initial_state()
        held = new_register_state()
        if primer is not None and len(primer):
            frames = self._frames(primer)
            U, _, _ = self.run(frames)
            u0 = U[-1].copy()
            for v in frames:
                register_hear(v, held)
        V = np.zeros((n_frames, self.n_visible), self.dtype)
        PV = np.zeros_like(V)
        u_end = np.empty_like(u0)
        P = packed.pack(self.params)
        gibbs.generate_sequence(u0, P, int(k), self._beta(temperature), self.rng_state, V, PV, u_end,
                                self.params["bv"], self.dtype.type(math.log(density)), float(register), held)
        return (V, PV) if return_probabilities else V

    def sample_frames(self, BV: np.ndarray, BH: np.ndarray, start: np.ndarray | None = None,
                      k: int = 25, temperature: float = 1.0, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Independent k-step Gibbs chains for N frames with biases BV (N × n_v), BH (N × n_h),
        in parallel; each starts from ``start`` (default silence). Returns (samples, means)."""
        N = BV.shape[0]
        V = np.zeros((N, self.n_visible), self.dtype) if start is None else np.array(start, self.dtype)
        PV = np.empty_like(V)
        if seed is None:  # continue the model's own stream
            seed = int(next_u64(self.rng_state))
        states = new_states(seed, N)
        gibbs.gibbs_batch(self.params["W"], self.WT, np.ascontiguousarray(BV, self.dtype),
                            np.ascontiguousarray(BH, self.dtype), V, int(k), self._beta(temperature), states, PV)
        return V, PV

    # -- training -------------------------------------------------------------------------
    def cost_and_grad(self, roll: np.ndarray, roll_sample: np.ndarray, u0: np.ndarray | None = None,
                      rnn_input: np.ndarray | None = None, player: np.ndarray | None = None
                      ) -> tuple[float, dict[str, np.ndarray]]:
        """cost = mean_t [F_t(v_t) − F_t(ṽ_t)] with the samples ṽ_t held constant, and its exact
        gradient for every parameter (BPTT through bv_t, bh_t into the RNN). ``rnn_input``: the
        frames the RNN hears instead of the true ones (held constant too), as when training on
        the model's own history. ``player``: the notes a player holds in each frame, which reach
        its biases and the RNN through the player path (Wpv, Wph, Wpu, and the trace: Wqv, Wqh)."""
        V = self._frames(roll)
        Vt = self._frames(roll_sample)
        X = V if rnn_input is None else self._frames(rnn_input)
        Pl = self._player(player)
        U, BV, BH = self.run(X, u0, player)
        p = self.params
        grads = {name: np.zeros_like(a) for name, a in self.params.items()}
        Q = self.trace(Pl) if len(Pl) else np.zeros((0, N_TRACE), self.dtype)
        cost = bptt.cost_and_grad(V, Vt, X, U, BV, BH, p["W"], p["Wuv"], p["Wuh"], p["Wvu"], p["Wuu"],
                                     *(grads[n] for n in PARAM_NAMES), Pl, Q, *(grads[n] for n in PLAYER_PARAM_NAMES))
        return float(cost), grads

    def cd_grad(self, roll: np.ndarray, k: int = 15, u0: np.ndarray | None = None
                ) -> tuple[float, float, dict[str, np.ndarray], np.ndarray]:
        """One CD-k step on a subsequence: returns (cost, cross-entropy, gradients, u_T)."""
        V = self._frames(roll)
        u0 = self.initial_state() if u0 is None else np.asarray(u0, self.dtype)
        grads = {name: np.zeros_like(a) for name, a in self.params.items()}
        u_end = np.empty_like(u0)
        p = self.params
        cost, xent = bptt.subsequence_grad(V, u0, p["W"], self.WT, p["bv"], p["bh"], p["Wuh"], p["Wuv"],
                                              p["Wvu"], p["Wuu"], p["bu"], int(k), self.rng_state,
                                              *(grads[n] for n in PARAM_NAMES), u_end, 0,
                                              bptt.NO_CLAMP, bptt.NO_MIX, 0, False, self.pitch_classes,
                                              *(p[n] for n in PLAYER_PARAM_NAMES),
                                              *(grads[n] for n in PLAYER_PARAM_NAMES))
        return float(cost), float(xent), grads, u_end


class FrameSampler:
    """The model a frame at a time, on packed parameters and with every buffer allocated once:
    the live engine, the jam evaluation and the tests all sample through it. ``sample`` and
    ``rnn_step`` allocate nothing and release the GIL while they compute.

    >>> sampler = FrameSampler(RnnRbm(seed=3), k=25)
    >>> v, pv = sampler.next_frame()       # v_t sampled given u_{t-1}; pv its mean
    >>> sampler.advance(v)                 # u_t from v_t (and the player's notes, if any)

    ``next_frame``/``advance`` keep the state themselves; ``sample``/``rnn_step`` take it and the
    output buffers from the caller (the engine keeps a state per precomputed frame). The state is
    s = [u | q], the RNN's and the player's trace in one buffer (``initial_state``: zeros). While a
    player is heard, ``sample(..., consensus=True)`` plays the consensus of ``chains`` chains.
    """

    def __init__(self, model: RnnRbm, k: int = 25, temperature: float = 1.0, chains: int = 1) -> None:
        self.model = model
        self.k = int(k)
        self.chains = int(chains)
        n_v, n_h, dt = model.n_visible, model.n_hidden, model.dtype
        self.P = packed.pack(model.params)  # its own copy: density and the register hold rewrite its bv
        self.P_bv = packed.views(self.P)["bv"]
        self.work, self.idx = packed.workspace(n_v, n_h, dt)
        self.V_c = np.zeros((self.chains, n_v), dt)  # the chains' draws, for the consensus
        self.PV_c = np.zeros((self.chains, n_v), dt)
        self.sets = np.zeros(self.chains, np.int64)
        self.pc_of = model.pitch_classes
        self.state_size = model.n_hidden_recurrent + N_TRACE
        self.log_density = dt.type(0.0)
        self.register = np.zeros(n_v, dt)  # the register hold's bias on bv (zeros: not holding)
        self.beta = model._beta(temperature)
        # next_frame / advance
        self.u = self.initial_state()
        self.u_next = self.initial_state()
        self.v = np.zeros(n_v, dt)
        self.pv = np.zeros(n_v, dt)
        self.clamp = np.zeros(n_v, np.int8)  # harmonize: 1 where the player's note is held
        self.v_clamp = np.zeros(n_v, dt)  # the player's notes
        self.nobody = np.zeros(n_v, dt)

    def initial_state(self) -> np.ndarray:
        """s_0 = [u_0 | q_0] = 0."""
        return np.zeros(self.state_size, self.model.dtype)

    def set_temperature(self, temperature: float) -> None:
        self.beta = self.model._beta(temperature)

    def set_density(self, density: float) -> None:
        """Multiply every note's odds by ``density``: bv + log(density)."""
        self.log_density = self.model.dtype.type(math.log(density))
        biased_bv(self.model.params["bv"], self.log_density, self.register, self.P_bv)

    def set_register(self, bias: np.ndarray) -> None:
        """The register hold's bias on every note's bv from the next frame (``kernels.register``;
        zeros: none). Allocates nothing."""
        self.register[:] = bias
        biased_bv(self.model.params["bv"], self.log_density, self.register, self.P_bv)

    def sample(self, u_prev: np.ndarray, clamp: np.ndarray, v_clamp: np.ndarray, v_out: np.ndarray,
               pv_out: np.ndarray, consensus: bool = False) -> None:
        """v_t into v_out (its mean into pv_out) given the state s_{t-1} = u_prev (or u_{t-1} alone: no
        trace) and the player's notes
        ``v_clamp`` (through the player path), the notes where ``clamp`` is set held at their value:
        one k-step chain from silence, or with ``consensus`` the draw of ``chains`` chains whose
        pitch classes agree most with the others' (one chain's consensus is its draw)."""
        if consensus:
            gibbs.sample_consensus(u_prev, self.P, self.k, self.beta, clamp, v_clamp, self.model.rng_state, self.V_c,
                                   self.PV_c, self.pc_of, self.sets, v_out, pv_out, self.work, self.idx)
        else:
            gibbs.sample_frame(u_prev, self.P, self.k, self.beta, clamp, v_clamp, self.model.rng_state, v_out, pv_out,
                               self.work, self.idx)

    def rnn_step(self, x: np.ndarray, player: np.ndarray, u_prev: np.ndarray, u_out: np.ndarray) -> None:
        """The state one frame on: u_t = tanh(bu + x·Wvu + player·Wpu + u_{t-1}·Wuu), and the
        player's trace q_t from ``player`` (``forward.state_step``)."""
        p = self.model.params
        forward.state_step(x, player, u_prev, p["bu"], p["Wvu"], p["Wpu"], p["Wuu"], self.pc_of, u_out)

    def warm(self) -> None:
        """Compile (or load from Numba's cache) every kernel ``sample``, ``rnn_step`` and the bias
        setters call, on
        scratch buffers and a copy of the random stream: the draws to come are unchanged."""
        scratch = self.model.rng_state.copy()
        v, pv, u = np.zeros_like(self.v), np.zeros_like(self.pv), np.zeros_like(self.u)
        gibbs.sample_frame(self.u, self.P, 1, self.beta, self.clamp, self.nobody, scratch, v, pv, self.work, self.idx)
        gibbs.sample_consensus(self.u, self.P, 1, self.beta, self.clamp, self.nobody, scratch, self.V_c, self.PV_c,
                               self.pc_of, self.sets, v, pv, self.work, self.idx)
        self.rnn_step(v, self.nobody, self.u, u)
        biased_bv(self.model.params["bv"], self.log_density, self.register, self.P_bv)  # set_density, set_register

    def reset(self) -> None:
        """Back to s_0 = 0 (a new piece)."""
        self.u[:] = 0.0

    def next_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample v_t given u_{t-1} (clamped notes held at ``v_clamp``); returns the sampler's own
        (v, pv) buffers, overwritten by the next call."""
        self.sample(self.u, self.clamp, self.v_clamp, self.v, self.pv)
        return self.v, self.pv

    def advance(self, v: np.ndarray, player: np.ndarray | None = None) -> None:
        """u_t = tanh(bu + v_t·Wvu + p_t·Wpu + u_{t-1}·Wuu) and q_t, p_t the player's notes (none: 0)."""
        self.rnn_step(v, self.nobody if player is None else player, self.u, self.u_next)
        self.u, self.u_next = self.u_next, self.u
