"""The sandboxed half of `endpointctl serve`, as its own entry point: started by
`endpointctl.local.serve_forever`, never by hand."""

import signal
import sys

# Stopped while the modules still load (the parent passes SIGINT on): exit 130 quietly.
signal.signal(signal.SIGINT, lambda _signum, _frame: sys.exit(128 + signal.SIGINT))

from endpointctl.local import _serve_in_sandbox  # noqa: E402

signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(_serve_in_sandbox(sys.argv[1:]))
