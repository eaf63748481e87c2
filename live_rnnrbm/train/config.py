"""Every setting of a training run: what it computes (``TrainConfig``, recorded in the weights'
metadata; ``check`` says which are out of range or at odds) and which of them only watch it
(``MONITOR_KEYS``, free to change on --resume).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..data.parts import PLAYER_PARTS
from ..kernels.bptt import CHAIN_STARTS
from ..model import HIGHEST_NOTE, LOWEST_NOTE


@dataclass
class TrainConfig:
    """Every setting that changes what training computes (recorded in the weights' metadata)."""

    n_hidden: int = 150
    n_hidden_recurrent: int = 100
    lowest_note: int = LOWEST_NOTE
    highest_note: int = HIGHEST_NOTE
    epochs: int = 50
    batch_frames: int = 100  # frames per subsequence (the tutorial's batch_size)
    batch_size: int = 1  # subsequences per update, computed in parallel
    k: int = 15  # CD-k
    chain_start: str = "data"  # the negative chains start at v_t (CD), "silence" or "previous" (v_{t-1})
    weight_decay: float = 0.0  # L2 on W and the RNN's matrices (not the biases), added to the gradient
    ema: float = 0.0  # Polyak averaging: validate and save the moving average of the weights (decay per update)
    optimizer: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.0
    clip: float = 0.0  # max global gradient norm; 0 = off
    schedule: str = "constant"
    warmup: int = 0  # steps of linear learning-rate warm-up
    lr_factor: float = 0.5  # plateau: lr cut factor
    patience: int = 3  # plateau: validations without improvement before a cut
    min_lr_factor: float = 0.05  # cosine: final lr as a fraction of lr
    pretrain_rnn_epochs: int = 0  # the RNN alone as a frame predictor (W = 0), exact BPTT: first of all
    pretrain_epochs: int = 0
    pretrain_lr: float | None = None  # default: lr
    pretrain_batch: int = 100  # frames per RBM-pretraining update
    carry_u: bool = False
    transpose_min: int = 0  # random key shift per piece and epoch, in semitones
    transpose_max: int = 0
    # listening: a share of the subsequences has a player part (parts.PLAYER_PARTS, one drawn per
    # subsequence) clamped in the negative chains, so CD learns p(rest | player's notes, history)
    player_parts: list = field(default_factory=list)
    player_share: float = 0.0
    player_follow: float = 0.0  # of those, the share played as follow: heard (path, RNN), not clamped
    own_history: float = 0.0  # share of frames whose RNN input is the model's own sample (scheduled sampling)
    own_history_k: int = 0  # its Gibbs steps from silence, as the instrument samples (0: the CD sample)
    own_negative: bool = False  # that own frame is the negative sample too (the instrument's sampler as negative phase)
    player_path_only: bool = False  # train the player path (Wpv, Wph) alone: the eight parameters stay as they are
    keyed_path: bool = False  # train the keyed player path (pieces in C): the one the instrument plays told the key
    seed: int = 0
    valid_every: int = 1
    valid_pieces: int = 0  # 0 = all validation pieces
    valid_k: int = 25  # Gibbs steps of the validation monitor's chains (generation uses 25)
    valid_samples: int = 1  # sampled frames per true frame for the cheap accuracy
    ais_chains: int = 32
    ais_steps: int = 300
    ais_pieces: int = 0  # AIS on N evenly spread validation pieces (0: the whole validation subset)
    ais_every: int = 1  # AIS every N validations (0: never)
    select: str = "auto"  # best weights by: "ll" (AIS), "xent" (cheap monitor), "auto": ll when AIS runs
    stop_after_steps: int = 0  # stop (with a checkpoint) after this many updates: for tests

    @property
    def pre_epochs(self) -> int:
        """Epochs before the RNN-RBM's own: RNN pretraining, then RBM pretraining."""
        return self.pretrain_rnn_epochs + self.pretrain_epochs

    @property
    def total_epochs(self) -> int:
        return self.pre_epochs + self.epochs

    def check(self) -> None:
        """ValueError for a setting out of its range, or settings that contradict each other."""
        if (self.batch_frames < 1 or self.batch_size < 1 or self.k < 1 or self.epochs < 0
                or self.pretrain_epochs < 0 or self.pretrain_rnn_epochs < 0):
            raise ValueError("need batch_frames ≥ 1, batch_size ≥ 1, k ≥ 1, epochs ≥ 0, pretrain_epochs ≥ 0, "
                             "pretrain_rnn_epochs ≥ 0")
        if not set(self.player_parts) <= set(PLAYER_PARTS):
            raise ValueError(f"player parts must be among {', '.join(PLAYER_PARTS)}, not {self.player_parts}")
        if not (0.0 <= self.player_share <= 1.0 and 0.0 <= self.own_history <= 1.0
                and 0.0 <= self.player_follow <= 1.0):
            raise ValueError("player_share, player_follow and own_history are shares: 0..1")
        if self.player_share > 0 and not self.player_parts:
            raise ValueError("player_share > 0 needs player parts (e.g. top chords voice)")
        if self.own_history_k < 0:
            raise ValueError("own_history_k is a number of Gibbs steps: 0 or more")
        if self.own_negative and not (self.own_history > 0 and self.own_history_k > 0):
            raise ValueError("own_negative needs own_history > 0 and own_history_k > 0")
        if self.own_history > 0 and self.player_share == 0:
            raise ValueError("own_history is for the subsequences a player plays in: it needs player_share > 0")
        if self.keyed_path and not (self.player_path_only and self.transpose_min == self.transpose_max == 0):
            raise ValueError("keyed_path learns the player path in C alone: it needs player_path_only and "
                             "no transposition (transpose 0 0)")
        if self.chain_start not in CHAIN_STARTS:
            raise ValueError(f"chain_start must be one of {', '.join(CHAIN_STARTS)}, not {self.chain_start!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), not {self.ema}")
        if self.select not in ("auto", "ll", "xent"):
            raise ValueError(f"select must be auto, ll or xent, not {self.select!r}")
        if self.select == "ll" and self.ais_every != 1:
            raise ValueError("--select ll needs --ais-every 1")


MONITOR_KEYS = ("valid_every", "valid_pieces", "valid_k", "valid_samples", "ais_chains", "ais_steps",
                "ais_pieces", "ais_every", "select")
