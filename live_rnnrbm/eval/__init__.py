"""Evaluation: how well weights model music — the log-likelihood per frame by annealed importance
sampling (``loglik``, with its kernels: ``ais``, RAISE in ``reverse_ais``, the chain pieces both
share in ``anneal``) and the expected frame accuracy (``frame_measures``), as the paper measured
them — and how well the live instrument listens (the jam evaluation: ``jam``, with its players and
baselines in ``jam_players`` and its counting in ``jam_counts``). ``cli`` is the ``live-rnnrbm
eval`` command."""
