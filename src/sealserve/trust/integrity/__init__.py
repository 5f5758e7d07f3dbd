"""Structural checks of a loaded model: index arrays that point inside their buffers, before anything runs it."""
