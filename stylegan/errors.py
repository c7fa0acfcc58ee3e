"""User-facing errors: one line that names the problem and the fix.

Entry points catch :class:`UserError` and print ``error: <message>`` instead of a traceback.
"""


class UserError(Exception):
    """Bad input or configuration that the user can fix; the message is shown as one line."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid or two values contradict each other."""
