"""The failures endpointctl reports as one line instead of a traceback."""

from __future__ import annotations


class CommandError(Exception):
    """A failure the user can act on; printed as one line."""


def known_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    from serving_runtime.errors import ServingError
    from serving_runtime.preflight import PreflightError
    from serving_config.config import ConfigError

    return (CommandError, ServingError, PreflightError, ConfigError, ClientError, BotoCoreError, OSError)
