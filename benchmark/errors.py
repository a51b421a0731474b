"""The errors a user can cause: each message names the problem and the fix (the CLI prints it, exit 2)."""


class UsageError(ValueError):
    """Bad input: an unknown name, a bad size, options that do not go together."""


class PluginError(UsageError):
    """A module given to ``--include`` or an entry point that does not load, or a method that clashes."""
