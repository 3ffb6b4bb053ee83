import signal
import sys


def _interrupted_while_loading(_signum: int, _frame: object) -> None:
    print("endpointctl: interrupted", file=sys.stderr)
    sys.exit(128 + signal.SIGINT)


# Ctrl-C while the modules still load ends as it does later: one line, exit 130, no traceback.
signal.signal(signal.SIGINT, _interrupted_while_loading)

from endpointctl.cli import main  # noqa: E402

signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(main())
