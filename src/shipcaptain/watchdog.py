"""A server this process starts is stopped even when this process dies without stopping it.

A throwaway PostgreSQL (``pg_ctl start`` leaves it running on its own) or a ``kubectl
proxy`` outlives the process that started it when that process is killed (kill -9, a test
stopped by its timeout, a CI job cancelled): nothing else knows to stop it. So whoever
starts one also starts a watchdog: a ``sh`` in a session of its own (a signal to this
process's group does not reach it) that reads one line from a pipe only this process holds.
When the owner stops the server itself it says so on the pipe (:meth:`Watchdog.disarm`) and
the watchdog leaves; when the owner dies, however it dies, the kernel closes the pipe and
the watchdog runs the commands that stop the server. It costs one ``sh`` process, asleep.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess

#: read one line: "stopped" from the owner, or nothing (end of file) once the owner is gone
_SCRIPT = 'read -r line; [ "$line" = stopped ] && exit 0; '


class Watchdog:
    """Runs ``commands`` (argv lists, in turn) once this process is gone, unless disarmed."""

    def __init__(self, commands: list[list[str]]) -> None:
        script = _SCRIPT + "; ".join(shlex.join(c) for c in commands)
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.PIPE,  # the write end stays with this process alone (O_CLOEXEC)
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def disarm(self) -> None:
        """The owner stopped the server itself: the watchdog leaves and does nothing."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):  # it is gone already
            proc.stdin.write(b"stopped\n")
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
