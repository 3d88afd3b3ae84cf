"""The ``grader`` command: routes each command and maps the exception tree to messages and exit codes."""
