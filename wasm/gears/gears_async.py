"""The session's asyncio event loop, driven by the host.

There are no threads in the guest, so the loop never blocks: after every entry the runtime
runs what is ready (`after_entry`) and tells the host when the next timer is due; the host
enters the session again then (its `loop` entry). A coroutine that waits leaves the
instance free for the session's other work.
"""
import asyncio
from asyncio import base_events, events

import gears_abi
import gears_host

error = gears_host.error

ATOMIC_AWAIT = "await is not allow inside atomic block"


class _NoSelector:
    """Nothing to wait on: there are no sockets in the sandbox, and timers are the host's."""

    def select(self, timeout):
        return []


class SessionLoop(base_events.BaseEventLoop):
    def __init__(self):
        super().__init__()
        self._selector = _NoSelector()
        self._thread_id = 0  # always "running": tasks start eagerly, get_running_loop() works

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        pass


_loop = None
step_active = False  # a flow step's callback may be running (gearsFuture() is allowed)
created = None  # the gearsFuture the running step created, taken by the pipeline
_entry_flags = None  # (main thread, async allowed) of the current entry, asked lazily
atomic_tasks = []  # the task (or None) of each open atomic() block, innermost last
_cancelled_in_atomic = set()


def loop():
    """This session's loop (made on first use: sessions without async pay nothing)."""
    global _loop
    if _loop is None:
        _loop = SessionLoop()
        events._set_running_loop(_loop)
    return _loop


def new_entry():
    global _entry_flags, step_active, created
    _entry_flags, step_active, created = None, False, None


class step_scope:
    """Around the callbacks of a flow's steps: gearsFuture() is allowed there, and the future a
    callback creates is its own. A flow run inside a step restores the outer step's state."""

    __slots__ = ("saved",)

    def __enter__(self):
        global step_active, created
        self.saved = (step_active, created)
        step_active, created = True, None

    def __exit__(self, *exc_info):
        global step_active, created
        step_active, created = self.saved
        return False


def _flags():
    global _entry_flags
    if _entry_flags is None:
        main, allowed = gears_host.request("entry")
        _entry_flags = (main == 1, allowed == 1)
    return _entry_flags


def async_allowed():
    """isAsyncAllow(): inside an execution whose client and context may wait."""
    inside = step_active or (_loop is not None and asyncio.current_task(_loop) is not None)
    return inside and _flags()[1]


def start(awaitable):
    """An asyncio future for what a step returned (a coroutine starts at once, eagerly)."""
    if not _flags()[1]:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never started: no "was never awaited" warning
        raise error("Creating async record is not allow")
    if isinstance(awaitable, GearsFuture):
        awaitable._returned = True
        return awaitable._future
    if isinstance(awaitable, asyncio.Future):
        return awaitable
    if asyncio.iscoroutine(awaitable):
        task = asyncio.Task(awaitable, loop=loop(), eager_start=True)
    else:
        task = asyncio.ensure_future(awaitable, loop=loop())
    _stop_awaits_in_atomic()
    return task


def _stop_awaits_in_atomic():
    """A task that suspended inside atomic() would hold the Redis lock while it waits: it is
    cancelled (its atomic block then exits) and its record fails with ATOMIC_AWAIT."""
    for task in atomic_tasks:
        if task is not None and task is not asyncio.current_task(_loop) and task not in _cancelled_in_atomic:
            _cancelled_in_atomic.add(task)
            task.cancel(ATOMIC_AWAIT)


def after_entry():
    """Runs what is ready; then asks the host to come back when the next timer is due."""
    if _loop is None:
        return
    lp = _loop
    if _flags()[0]:
        # On Redis's main thread: a worker continues (sync registrations go async_local).
        if lp._ready:
            gears_host.request("wake", "0")
            return
    else:
        while lp._ready or (lp._scheduled and lp._scheduled[0]._when <= lp.time()):
            try:
                lp._run_once()
            except (SystemExit, KeyboardInterrupt):
                # A task raised it (asyncio lets only these two through): the task has ended
                # with it, as with any error, and whoever awaits it gets it. The loop goes on.
                pass
            _stop_awaits_in_atomic()
        _cancelled_in_atomic.clear()
    if lp._scheduled:
        gears_host.request("wake", str(_wake_delay_ms(lp._scheduled[0]._when - lp.time())))


def _wake_delay_ms(seconds):
    """When the host is to run the loop again: `seconds` from now in whole ms, rounded up,
    at most the longest interval a script may ask for (a timer due at infinity, or 1e300
    seconds away, or at NaN, waits that long)."""
    longest = gears_abi.MAX_INTERVAL_SECS
    if not seconds <= longest:  # also NaN
        seconds = longest
    return max(0, int(seconds * 1000) + 1)


NOT_CONTINUED = "Async record did not called continue"


class GearsFuture:
    """gearsFuture(): returned by a step, it parks the record until continueRun(value) or
    continueFailed(error) is called from any later callback of this session."""

    def __init__(self):
        self._future = loop().create_future()
        self._returned = False  # set once its step returned it (start())

    def continueRun(self, value):
        if self._future.done():
            raise error("Can not continue with the same future twice")
        if not self._returned:
            # 1.2 (futureContinue): how a value continues depends on the step (map, filter,
            # flatmap, foreach), known only once the step returned the future. A failure
            # (continueFailed) needs no such knowledge and is taken at once.
            raise error("Can not handle future untill it returned from the callback")
        self._future.set_result(value)

    def continueFailed(self, err):
        if self._future.done():
            raise error("Can not continue with the same future twice")
        # 1.2 (PyFuture continueFailed) keeps str(err) as the record's error, verbatim. What
        # 1.2's runCoroutine would not even catch (sys.exit(), KeyboardInterrupt) stays itself.
        if isinstance(err, BaseException) and not isinstance(err, Exception):
            self._future.set_exception(err)
        else:
            self._future.set_exception(gears_host.flat_error(str(err)))

    def __await__(self):
        return self._future.__await__()

    def __getstate__(self):
        return None

    def __del__(self):
        # Dropped while its record still waits: nothing can continue it any more, so the record
        # fails as in 1.2 (PyFuture's dealloc) instead of waiting for ever.
        future = self._future
        if not future.done() and getattr(future, "_callbacks", None):
            try:
                future.set_exception(gears_host.flat_error(NOT_CONTINUED))
            except RuntimeError:  # its loop is closed: the session is going away
                pass


def gearsFuture():
    global created
    if not step_active:
        raise error("Future object can only be created inside certain execution steps")
    if not _flags()[1]:
        raise error("Creating async record is not allow")
    if created is not None:
        raise error("Can not create async record twice on the same step")
    created = GearsFuture()
    return created


def createFuture():
    return loop().create_future()


def setFutureResults(future, value):
    if not future.done():
        future.set_result(value)


def setFutureException(future, exc):
    if not future.done():
        if not isinstance(exc, BaseException):
            exc = Exception(str(exc))  # as 1.2's setFutureException
        future.set_exception(exc)


def runCoroutine(coro, f=None, delay=0):
    """Runs `coro` on the session's loop (after `delay` seconds); its result or error goes
    to the gearsFuture `f` when one is given."""
    async def run():
        if delay:
            await asyncio.sleep(delay)
        try:
            result = await coro
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # sys.exit() too: an error of the waiting record
            if f is None:
                raise
            f.continueFailed(exc)
            return None
        if f is not None:
            f.continueRun(result)
        return result

    return loop().create_task(run())
