"""Renderers: each reads a finished ``Report`` (or an exercise, for ``show``) and builds a document from it,
text or a rich renderable, without writing anything; ``formats`` lists the output formats."""
