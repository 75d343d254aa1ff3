"""Errors that carry a one-line message for the user.

The CLI prints ``error: <message>`` and exits with code 2 for any :class:`TracesimError`;
anything else is a bug and keeps its traceback.
"""


class TracesimError(Exception):
    """A user-facing error: the message names the problem and how to fix it."""


class TraceError(TracesimError):
    """A path that is not a readable trace of a supported format version."""
