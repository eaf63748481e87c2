"""The data: piano-rolls and the MIDI files and pickles they come from (``pianoroll``), a corpus
named on the command line (``corpus``), keys and transpositions (``keys``), the player's part of a
frame (``parts``), and weights files (``weights``)."""
