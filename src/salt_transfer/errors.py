"""The one exception type the command line turns into a one-line message and a non-zero exit.

Library code raises `InputError` for anything a user can fix (a missing path, mismatched shapes, an
empty overlap, NaN rows). The message names the offending input and, where possible, the fix.
Everything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """A bad input the user can fix; the message names it."""
