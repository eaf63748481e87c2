"""The live instrument: ``live-rnnrbm play`` (``session``) wires together its settings
(``settings``: the typed settings and their flags; ``presets``: preset files; ``setting_checks``:
each value's check), the MIDI ports (``ports``, ``jackmidi``), the frame engine (``engine``;
``frames``: a frame's notes into messages), the clocks (``clock``), the player's input
(``listener``), live controls (``controls``; ``osc``: the same controls over OSC; ``switch``:
switching presets while playing; ``learn``: MIDI learn), the recording (``record``) and real-time
scheduling (``realtime``); ``midi`` holds the MIDI status bytes and the check every incoming message passes."""
