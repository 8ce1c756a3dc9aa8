"""Exception types raised by v2xsim."""


class V2XSimError(Exception):
    """Base class of every error v2xsim raises on purpose."""


class ConfigError(V2XSimError, ValueError):
    """A scenario or command-line setting is invalid; the message names the key."""


class DataError(V2XSimError):
    """A data file is missing or malformed; the message names the file."""
