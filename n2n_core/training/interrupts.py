"""What SIGINT (Ctrl-C, a notebook's interrupt button) and SIGTERM do to training (``train.fit``):
end it after the current step, with a checkpoint at that step, and raise ``TrainingInterrupted``;
the same call resumes from the checkpoint. A second signal acts as it always did."""
from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C, a notebook's interrupt) or SIGTERM stopped ``fit``, which first wrote a
    checkpoint at the current step: the same call resumes from it. ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step, self.checkpoint, self.exit_code = signum, step, checkpoint, 128 + signum

    def resume_hint(self) -> str:
        """The one line a command prints for it: where it stopped, and that the same command goes on."""
        return (f"interrupted at step {self.step}: {self.checkpoint} holds it; the same command resumes from there "
                f"({signal.Signals(self.signum).name})")


@contextlib.contextmanager
def signals_end_training():
    """While training, SIGINT and SIGTERM only set a flag (the list yielded), which ``fit`` reads after
    each step; the previous handlers come back at once, so a second signal acts as it always did.
    Handlers can only be set in the main thread: elsewhere nothing changes."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def note(signum, frame):
        received.append(signum)
        for s, handler in previous.items():
            signal.signal(s, handler)

    for s in previous:
        signal.signal(s, note)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
