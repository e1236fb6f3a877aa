"""The one exception type that means "the user asked for something wrong".

The CLI catches it and prints its message as a single line on stderr (no traceback), so every
message must say what is wrong and what to do about it.
"""


class UserError(ValueError):
    """Bad input: an unknown name, a malformed value, a missing dataset, a conflicting run dir."""
