"""What one worker process may ask of YouTube: a request budget, and a breaker for when it is blocked.

YouTube judges a *session* (an IP, cookies, a PO token), not a thread: the yt-dlp wiki puts its limit
at about 300 videos an hour per session (about 1000 with a PO token). So every fetch thread of a worker
process goes through one `SessionGuard`:

- budget: fetch starts are spaced by 3600 / max_videos_per_hour seconds (and at least sleep_requests),
  so no hour holds more than the budget, whatever the threads do;
- pause: a bot check or a rate limit pauses every thread of the process together, for block_pause_s,
  doubling with each block in a row (up to block_pause_max_s);
- breaker: after `max_blocked` blocks in a row (no success between them) the guard trips, and every
  later fetch ends at once as `session_blocked`: those rows stay pending, and a rerun resumes them.
  Failed JS challenges count towards the breaker too (without a pause: waiting does not fix them).

Blocks are counted per pause, not per thread: the failures of fetches that started before the pause
began are the same block seen by several threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cadenza.formats.failures import BLOCKING, JS_FAILURES
from cadenza.pipelines.ingest.fetch import Pacer
from cadenza.pipelines.ingest.fetch_errors import FetchError


@dataclass(frozen=True)
class SessionLimits:
    max_videos_per_hour: float = 300.0  # 0: no budget
    max_blocked: int = 5
    block_pause_s: float = 60.0
    block_pause_max_s: float = 1800.0
    sleep_requests: float = 0.0
    run_id: str = ""  # one guard per run and process, also when runs share a process

    @property
    def interval_s(self) -> float:
        budget = 3600.0 / self.max_videos_per_hour if self.max_videos_per_hour > 0 else 0.0
        return max(budget, self.sleep_requests)


class SessionGuard:
    def __init__(self, limits: SessionLimits):
        self.limits = limits
        self.pacer = Pacer(limits.interval_s)
        self._cond = threading.Condition()
        self._paused_until = 0.0
        self._epoch = 0  # +1 per counted block: a fetch's start epoch tells stale reports apart
        self.blocked_in_row = 0
        self.tripped = False
        self.last_block = ""  # the last block's category and message, for the run's closing line

    def before_fetch(self) -> int:
        """Wait out a pause and the budget; return this fetch's epoch. Raises once the breaker tripped."""
        with self._cond:
            while True:
                self._raise_if_tripped()
                wait = self._paused_until - time.monotonic()
                if wait <= 0:
                    break
                self._cond.wait(wait)
            epoch = self._epoch
        self.pacer.wait()
        with self._cond:
            self._raise_if_tripped()
        return epoch

    def _raise_if_tripped(self) -> None:
        if self.tripped:
            raise FetchError("session_blocked", f"not fetched: YouTube blocked this session ({self.last_block})")

    def after_fetch(self, epoch: int, error: FetchError | None) -> None:
        """Report how a fetch that started in `epoch` ended (None: it succeeded)."""
        with self._cond:
            if epoch != self._epoch:
                return  # started before the current pause: says nothing new
            if error is None:
                self.blocked_in_row = 0
                return
            if error.category not in BLOCKING | JS_FAILURES:
                return
            self.blocked_in_row += 1
            self._epoch += 1
            self.last_block = f"{error.category}: {error.message[:200]}"
            if error.category in BLOCKING:
                pause = min(self.limits.block_pause_max_s, self.limits.block_pause_s * 2 ** (self.blocked_in_row - 1))
                self._paused_until = time.monotonic() + pause
            if self.blocked_in_row >= self.limits.max_blocked:
                self.tripped = True
            self._cond.notify_all()


_GUARDS: dict[SessionLimits, SessionGuard] = {}
_GUARDS_LOCK = threading.Lock()


def guard_for(limits: SessionLimits) -> SessionGuard:
    """The guard of this process for these limits (and run): shared by every DoFn instance in it."""
    with _GUARDS_LOCK:
        if limits not in _GUARDS:
            _GUARDS[limits] = SessionGuard(limits)
        return _GUARDS[limits]
