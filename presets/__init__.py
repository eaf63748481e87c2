"""Presets shipped with live-rnnrbm (installed as live_rnnrbm._presets)."""
