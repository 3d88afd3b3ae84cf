"""The ``grader`` command: ``app`` parses the options and calls the library, ``exits`` maps the exception
tree to messages and exit codes, ``outputs`` and ``runs`` write what a grading was asked to write."""
