"""The one exception type for user mistakes (bad checkpoint, config, image, override, input size...).

Its message is one line that names the problem and the fix; the CLI prints it without a traceback
and exits with status 2. Anything else escaping is a bug in pdl2ttnn and keeps its traceback.
"""


class UserError(Exception):
    pass
