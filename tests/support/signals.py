"""Child processes that must see Ctrl-C: a shell's background job (``cmd &`` without job control, e.g. a CI
script) starts with SIGINT ignored, every child inherits that, and Python then installs no KeyboardInterrupt
handler, so a test's SIGINT would be ignored as the program rightly does for background jobs."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for ``subprocess.Popen``: the child starts with SIGINT's default disposition."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
