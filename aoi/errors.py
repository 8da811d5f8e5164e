"""The error of a user's mistake (bad input, missing or corrupt file, wrong setting).

Its message is one line that names the file or field and says what to do. The command line
prints it without a traceback (``--debug`` shows one); any other exception is a bug in aoi.
"""

DEBUG_HELP = "show the traceback of an error (else: one line)"  # every command's --debug


class UserError(Exception):
    """A mistake the user can fix; the message names the file or field and what to do."""
