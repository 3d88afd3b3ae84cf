"""What an exercise is, as data: its spec (``exercise.toml``), the concrete cases built from it, its catalog
of known mistakes, and the plain data its analysis receives and returns."""
