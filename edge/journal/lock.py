"""One process at a time on a folder's state: an exclusive `flock` held for the process's life.

    lock = ProcessLock(Path("journal.db.node.lock"))
    holder = lock.acquire()        # None: this process holds it now; else the holder's pid
    ...
    lock.release()

A node takes one beside its journal: two nodes on one journal (a second `reman node` started by
hand beside the systemd one, a demo started twice) would share its outbox, each publisher handing
records to its own broker, so a dashboard would miss what went to the other. `reman demo` takes
one on its data folder. The kernel drops the lock when the process ends, however it ends, so a
killed node leaves none behind; the file only keeps the holder's pid for the message. Tools that
read a journal (`reman journal`, `reman model`, `reman passport`) take none.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class ProcessLock:
    """An exclusive, non-blocking `flock` on `path` (made when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> int | None:
        """Take the lock: None when taken, else the pid written by the process that holds it
        (0 when it wrote none). OSError when the file cannot be made or opened."""
        if self._fd is not None:
            return None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            return int(holder) if holder.isdigit() else 0
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return None

    def release(self) -> None:
        """Let the lock go (closing the file releases it); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
