"""The runtime's one failure type."""


class ServingError(Exception):
    """The artifact or the handler cannot be served; the message says why."""
