"""Weights shipped with live-rnnrbm (installed as live_rnnrbm._weights)."""
