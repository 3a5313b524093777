"""One background job at a time: a core generator in napari's ``thread_worker``.

The job function is a generator that takes a ``stop`` callable and yields
messages (numpy copies, never live tensors). Messages are handed to the GUI
in batches at most every ``interval_ms``: the worker never waits for the GUI,
and a fast solver cannot flood the event loop. A message that is a
:class:`Failed` record ends the job with an error the panel shows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QWidget

__all__ = ["Failed", "Runner", "guarded"]


@dataclass(frozen=True)
class Failed:
    """A job ended with an error; ``message`` is for the user."""

    message: str


def guarded(job: Iterator[Any], done: threading.Event) -> Iterator[Any]:
    """Yield from ``job``; turn an exception into a final :class:`Failed`.

    napari's worker treats a ``RuntimeError`` as "worker deleted" and drops it
    silently (torch raises ``RuntimeError`` for shape or CUDA problems), and it
    reports other errors with a traceback; catching here gives one clear
    notification instead. ``done`` is set when the job has ended.
    """
    try:
        yield from job
    except Exception as exc:
        yield Failed(
            f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
        )
    finally:
        done.set()


class _Worker(GeneratorWorker):
    """napari's generator worker that always closes its generator when it stops.

    On ``quit()`` (napari cancels workers when its window closes) the plain
    worker just abandons the generator; closing it runs the job's ``finally``
    clauses (memory release, the ``done`` flag) in the worker thread.
    """

    def work(self) -> Any:
        try:
            return super().work()
        finally:
            self._gen.close()


class Runner(QObject):
    """Runs one job generator at a time for a panel.

    Parameters
    ----------
    owner : QWidget
        The panel; closing it, removing its dock or closing the viewer stops the job.
    on_batch : callable
        Called in the GUI thread with the list of messages that arrived since
        the last call.
    on_done : callable
        Called in the GUI thread once the job has ended (after the last batch).
    interval_ms : int
        Shortest time between two ``on_batch`` calls.
    on_shutdown : callable, optional
        Called (in any thread, touching no Qt object) when a running job is shut down
        without ``on_done``: its dock or the viewer was closed.
    """

    def __init__(
        self,
        owner: QWidget,
        on_batch: Callable[[list[Any]], None],
        on_done: Callable[[], None],
        interval_ms: int = 40,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(owner)
        self._on_batch, self._on_done, self._on_shutdown = on_batch, on_done, on_shutdown
        self._pending: list[Any] = []
        self._worker: GeneratorWorker | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._flush)
        self._watch()
        # closing the viewer deletes the panel: stop the job, touching no Qt object of ours
        owner.destroyed.connect(lambda *_: self.shutdown(deleted=True))

    # -- state ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a job is under way (including a paused one)."""
        return self._worker is not None

    @property
    def paused(self) -> bool:
        return self._worker is not None and self._worker.is_paused

    # -- control ------------------------------------------------------------------
    def start(self, job: Callable[..., Iterator[Any]], *args: Any) -> bool:
        """Start ``job(*args, stop=...)`` unless a job runs; returns whether it started."""
        if self.running:
            return False
        self._stop = stop = threading.Event()
        self._done = done = threading.Event()
        self._pending = []

        def work() -> Iterator[Any]:
            yield from guarded(job(*args, stop=stop.is_set), done)

        worker = create_worker(
            work, _start_thread=False, _ignore_errors=True, _worker_class=_Worker
        )
        worker.yielded.connect(self._receive)
        worker.finished.connect(self._finished)
        self._worker = worker
        self._watch()  # the panel may have been docked (inside tabs, a scroll area) since
        worker.start()
        return True

    def stop(self) -> None:
        """Ask the job to stop between two iterations (it still yields its last message)."""
        self._stop.set()
        if self._worker is not None and self._worker.is_paused:
            self._worker.resume()

    def toggle_pause(self) -> None:
        """Pause (between two messages) or resume the job."""
        if self._worker is not None:
            self._worker.toggle_pause()

    def shutdown(self, timeout: float = 10.0, deleted: bool = False) -> None:
        """Stop the job and wait for its thread to end; no further callbacks."""
        worker, self._worker = self._worker, None
        self._pending = []
        if not deleted:
            self._timer.stop()
        if worker is None:
            return
        for signal in (worker.yielded, worker.finished):
            try:
                signal.disconnect()
            except (TypeError, RuntimeError):
                pass
        self._stop.set()
        if worker.is_paused:
            worker.resume()
        self._done.wait(timeout)
        if self._on_shutdown is not None:
            self._on_shutdown()

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until the job's generator has ended (for scripts and tests)."""
        return self._done.wait(timeout)

    # -- plumbing -------------------------------------------------------------------
    def _receive(self, message: Any) -> None:
        self._pending.append(message)
        if not self._timer.isActive():
            self._timer.start()

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._on_batch(batch)

    def _finished(self) -> None:
        self._timer.stop()
        self._flush()
        self._worker = None
        self._on_done()

    def _chain(self) -> list[QObject]:
        """The owner (this runner's Qt parent) and every object above it, innermost first."""
        chain: list[QObject] = []
        node = self.parent()
        while node is not None:
            chain.append(node)
            node = node.parent()
        return chain

    def _watch(self) -> None:
        """Watch the owner and every widget above it (napari removes the *outer* widget).

        A panel inside the tabbed Explorer is never re-parented itself when its dock is
        removed: the Explorer is. Any of them losing its parent stops the job. (Installing
        a filter twice keeps one; no reference to the chain is kept, so nothing here holds
        the viewer alive.)
        """
        for node in self._chain():
            node.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange and any(obj is n for n in self._chain()):
            if obj.parent() is None:
                self.shutdown()  # the dock (or a widget holding the panel) was removed
            else:
                self._watch()
        return False
