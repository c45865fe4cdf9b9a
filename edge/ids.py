"""Time-ordered unique ids (timestamps are `edge.contract.timefmt`)."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id() -> str:
    """A 26-character id that sorts by creation time (ULID layout: 48-bit ms + 80 random bits).

    Ids made in the same millisecond by this process still sort in creation order.
    """
    global _last_ms, _counter
    with _lock:
        now = int(time.time() * 1000)
        if now <= _last_ms:
            now = _last_ms
            _counter += 1
        else:
            _last_ms, _counter = now, 0
        rand = (_counter << 64) | int.from_bytes(os.urandom(8), "big")
    value = (now << 80) | (rand & ((1 << 80) - 1))
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))
