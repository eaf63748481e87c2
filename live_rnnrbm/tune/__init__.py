"""Searching the training options with Ray Tune (``live-rnnrbm tune``: ``cli``; the ``tune`` extra).

``space`` is what is searched (a typed space, its defaults, and ``--space FILE.yaml``), ``trial``
one trial (a real ``live-rnnrbm train`` run reporting its validation scores to Ray Tune), ``cli``
the command: ASHA over the trials, the best one's weights and the report.
"""
