"""Once a command has answered, the ``shipcaptain`` process ends: a thread that did not end
(a gate's wait that missed the engine's stop) held the interpreter's exit after ``release
resume`` had printed its answer. ``main`` leaves within ``EXIT_GRACE`` with the command's
exit code, naming the threads it leaves behind.

Each case runs ``main`` in a fresh interpreter (a subprocess), as a person's shell does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from shipcaptain.cli.main import LEFT_BEHIND

#: ``main`` with a command that starts a thread which never ends (or, given "ends", one
#: that ends), then exits with code 12
DRIVER = textwrap.dedent(
    """
    import sys, threading, click
    import shipcaptain.cli.main as m

    stuck = threading.Event()
    mode = sys.argv.pop(1)  # the command itself takes no argument

    @click.command()
    def command():
        def wait():
            stuck.wait(None if mode == "never" else 0.2)
        threading.Thread(target=wait, name="parked-execution").start()
        click.echo("answer")
        sys.exit(12)

    m.cli = command
    m.EXIT_GRACE = 1.0
    m.main()
    """
)


def _run(thread: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, thread],
        capture_output=True,
        text=True,
        timeout=60,  # without the guard the process never ends: TimeoutExpired
        check=False,
    )


def test_a_command_whose_thread_never_ends_leaves_with_its_exit_code_and_says_which() -> None:
    done = _run("never")
    assert done.returncode == 12
    assert done.stdout == "answer\n"  # the answer is printed before the process leaves
    assert f"1 {LEFT_BEHIND} 1s" in done.stderr
    assert "thread 'parked-execution':" in done.stderr
    assert "in wait" in done.stderr  # its stack, for the bug report


def test_a_thread_that_ends_is_waited_for_and_nothing_is_said() -> None:
    done = _run("ends")
    assert done.returncode == 12
    assert done.stdout == "answer\n"
    assert done.stderr == ""
