"""The event loop a :class:`SyncEventLogger` owns, run by a daemon thread of its own.

Why a loop of its own: blocking callers (plain threads, and code running inside some
other event loop) hand their calls to a loop that is never theirs, so waiting for the
answer blocks them but cannot deadlock them, and the ``EventLogger`` stays on one loop
for its whole life, as its engine's connections require.

Why a daemon thread: a process that forgets to close its logger must still be able to
exit. ``atexit`` closes every logger still open (flushing it) before the interpreter
stops daemon threads, so nothing is lost on a normal exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

_T = TypeVar("_T")


class LoopThread:
    """One event loop running forever in a daemon thread, until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self.ident = self._thread.ident

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                _cancel_remaining(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                # It starts a thread to join the executor's threads, which the interpreter
                # refuses at exit (Python 3.12+); by then concurrent.futures has joined them.
                with contextlib.suppress(RuntimeError):
                    loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's own thread."""
        return threading.get_ident() == self.ident

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Run ``coro`` on the loop; its result arrives in the returned future."""
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop is closed: the coroutine never ran
            coro.close()
            raise

    def stop(self) -> None:
        """Stop the loop (what still runs on it is cancelled), close it, join the thread."""
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still on ``loop`` and let them finish, as ``asyncio.run`` does."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
