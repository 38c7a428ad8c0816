"""The ``outreach`` command line: a thin adapter over the packages below it, one module per
command group (``outreach/cli/*_commands.py``) and the demo in :mod:`outreach.cli.demo`.

Errors from the project's exception tree become one line on stderr and their exit code (2 for bad
input); progress goes to stderr; ``--json`` prints one document on stdout.
"""

# Importing a group's module adds its commands to ``main``.
from outreach.cli import (  # noqa: F401
    access_log_commands,
    audit_commands,
    data_commands,
    demo,
    incident_commands,
    key_commands,
    label_commands,
    model_commands,
    policy_commands,
    queue_commands,
    release_commands,
    score_commands,
    serve_commands,
    transparency_commands,
    user_commands,
)
from outreach.cli.base import main

__all__ = ["main"]
