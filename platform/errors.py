"""Errors a user can fix; the command line turns them into one line and exit status 2."""


class UsageError(Exception):
    """Bad input from the user: a config key, a study spec, a path. Exit status 2."""


class DatasetError(UsageError):
    """A dataset on disk is missing, malformed or inconsistent; the message names the path."""


class ConfigError(UsageError):
    """A configuration key is unknown, mistyped or has an impossible value; the message names it."""
