"""Training an RNN-RBM on MIDI files or a benchmark pickle (``live-rnnrbm train``: ``cli``).

The baseline is the tutorial's algorithm: pieces cut into subsequences of ``--batch-frames``
(100) frames, CD-``k`` (15) samples ṽ_t from every true frame, the gradient of
mean_t [F_t(v_t) − F_t(ṽ_t)] through the RNN by BPTT, plain SGD at lr 0.001 (``--batch-size 1
--optimizer sgd`` is exactly that). On top: mini-batches of subsequences computed in parallel
(``kernels.bptt.batch_grad``, one thread per subsequence), Adam, gradient-norm clipping, a learning-
rate schedule, RBM pretraining of W, bv, bh on shuffled frames, and carrying u across the
consecutive subsequences of a piece (the tutorial resets it to 0 at every subsequence).

Files: ``--out X.npz`` holds the best weights on the validation data (a plain weights file);
``X.last.npz`` the latest state — a weights file too, with the optimiser state and the position
in the epoch, which ``--resume`` continues from exactly (same parameters, bit for bit, as a run
that was never interrupted). Ctrl-C, SIGTERM or SIGHUP finish the current step and write both; in
a validation they abandon it between two chunks (a fraction of a second) and the checkpoint is the
end of the epoch's steps, so that --resume runs that validation again.

Everything random in an epoch (piece order, transpositions, the CD chains' streams) is derived
from (seed, epoch, step), so the position is all the random state a checkpoint needs.

The modules: ``config`` (every setting, ``TrainConfig``), ``data`` (the training and validation
pieces), ``trainer`` (the loop, ``Trainer``), ``plan`` (what each epoch and update takes and
draws), ``validation`` (an epoch's figures) with ``monitor`` (the cheap validation monitor; the AIS
log-likelihood is ``eval.loglik``'s), ``optim`` (optimisers, clipping, schedules), ``rnn_pretrain``
(the RNN alone as a frame predictor), ``checkpoint`` (the ``.last.npz`` files, and writing the
run's files where there is room), ``resume`` (continuing from a checkpoint) and ``cli``.
"""
