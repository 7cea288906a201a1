"""The one exception family vidsr raises; the CLI turns it into a red line and exit code 1."""

from __future__ import annotations


class VidsrError(Exception):
    """A problem the user can act on; the message says what and, where possible, how to fix it."""


class InputError(VidsrError):
    """The input file is missing, unreadable, corrupt, or has no usable video."""


class OutputError(VidsrError):
    """The output cannot be written where or how it was asked."""


class ModelError(VidsrError):
    """A model name is unknown or a weight file cannot be loaded."""


class SettingsError(VidsrError):
    """A combination of options that cannot work (for example a scale the model cannot give)."""


class PrecisionOverflow(VidsrError):
    """A network's values overflow the reduced precision it computes in (NaN or infinity in its
    output); the message ends with the way out, ``--precision fp32``."""


class RenderInterrupted(VidsrError):
    """Ctrl-C (or SIGTERM) stopped a render; the message says how to resume."""
