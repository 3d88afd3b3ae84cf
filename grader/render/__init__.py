"""Renderers: each reads a finished ``Report`` (or an exercise, for ``show``) and writes it out."""
