"""The error type for bad configuration values (a leaf module: every room may raise it)."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message starts with the dotted field name."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def require(cond: bool, field: str, reason: str) -> None:
    """Raise ConfigError(field, reason) unless cond holds."""
    if not cond:
        raise ConfigError(field, reason)
