"""The one exception type that means "the user gave us bad input".

The command line turns it into a single `error: ...` line and exit code 2; everything else is a bug and
keeps its traceback.
"""


class DigitlabError(ValueError):
    """Bad input: a file, an argument or a request that digitlab cannot use, with a message saying why."""
