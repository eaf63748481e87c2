"""live-rnnrbm: a real-time generative MIDI instrument built on the RNN-RBM.

>>> from live_rnnrbm import RnnRbm, load_weights, midi_to_roll, roll_to_midi
"""
from .data.pianoroll import PianoRoll, midi_to_roll, roll_to_midi, load_pickle
from .data.weights import load_weights, save_weights
from .model import RnnRbm

__all__ = ["RnnRbm", "PianoRoll", "midi_to_roll", "roll_to_midi", "load_pickle", "load_weights", "save_weights"]
__version__ = "0.1.0"
