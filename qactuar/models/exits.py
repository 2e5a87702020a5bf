"""How a child process ended, in the words both parents log.

The fork model's parent and the prefork master reap children and report
their end the same way ("killed by SIGSEGV", "exited with status 3").
"""

from __future__ import annotations

import os
import signal

__all__ = ["describe_exit"]


def describe_exit(status: int) -> str:
    """``status`` as ``os.waitpid`` returns it, in words."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:  # a real-time signal, say
            name = str(number)
        return f"killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
