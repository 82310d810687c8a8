"""Running a flow: each record is pushed through the steps in turn.

A step whose callback returns something to wait for (a coroutine, an asyncio future, a
gearsFuture) parks that record until it resolves, while the other records go on; a step that
needs all of its input (accumulate, groupby, ...) ends only when nothing before it is parked.
Without async callbacks a run ends within the `feed` call that starts it.
"""
import asyncio
import time
import types

import gears_async

error = gears_async.error
FORCED_STOP = "Execution was aborted (forced stop)"
_PASS_THROUGH = ("topyrecord", "collect", "repartition")
_WAITABLE = (asyncio.Future, gears_async.GearsFuture)


def _waits(value):
    return value.__class__ is types.CoroutineType or isinstance(value, _WAITABLE)


def _not_async(value, what):
    """Extractors and end-of-input reducers must answer at once."""
    if _waits(value):
        if value.__class__ is types.CoroutineType:
            value.close()
        raise error("%s can not be async" % what)
    return value


class _Serial:
    """State of a step that takes its records one at a time: an async reducer's result is
    the next call's input, so records that arrive meanwhile queue up."""

    def __init__(self):
        self.value, self.groups, self.busy, self.queue = None, {}, False, []


class Run:
    def __init__(self, steps, errors, format_error, timings=None):
        # (index in the plan, handler, args) of each step that does something here.
        self.stages = [(i, _HANDLERS[kind], args) for i, (kind, *args) in enumerate(steps)
                       if kind not in _PASS_THROUGH]
        n = len(self.stages)
        self.errors, self.format_error, self.timings = errors, format_error, timings
        self.results = []
        self.parked = [0] * n
        self.ended = [False] * (n + 1)
        self.finished = [False] * n
        self.state = [_Serial() if h in _STATEFUL else None for _, h, _ in self.stages]
        self.waiting = set()
        self.saturated = False  # a limit() has all it will pass: reading can stop
        self.done = self.cancelled = False
        self.on_done = None

    # ---- feeding --------------------------------------------------------------------
    def feed(self, source):
        """Pushes every record of `source` (a reader) and ends the input."""
        gears_async.step_active = True
        try:
            it = iter(source)
            while not self.saturated:
                try:
                    if self.timings is None:
                        record = next(it)
                    else:
                        started = time.perf_counter()
                        try:
                            record = next(it)
                        finally:
                            self.timings[0] += time.perf_counter() - started
                except StopIteration:
                    break
                except Exception as exc:
                    self.fail(exc)
                    break
                self.push(0, record)
            self.ended[0] = True
            self._maybe_end(0)
        finally:
            gears_async.step_active = False
        return self

    def push(self, k, record):
        if k == len(self.stages):
            self.results.append(record)
            return
        _, handler, args = self.stages[k]
        try:
            handler(self, k, record, *args)
        except Exception as exc:
            gears_async.created = None
            self.fail(exc)

    def fail(self, exc):
        self.errors.append(self.format_error(exc, exc.__traceback__))

    def call(self, k, f, *args):
        """f(*args), timed with ProfileExecutions; a gearsFuture it created is its result."""
        if self.timings is None:
            value = f(*args)
        else:
            started = time.perf_counter()
            try:
                value = f(*args)
            finally:
                self.timings[self.stages[k][0] + 1] += time.perf_counter() - started
        created = gears_async.created
        if created is not None:
            gears_async.created = None
            return created
        return value

    # ---- waiting ----------------------------------------------------------------------
    def park(self, k, awaitable, then, serial=None):
        """The record at step `k` waits for `awaitable`; `then(value)` continues it."""
        future = gears_async.start(awaitable)
        if future.done():
            self._resolve(k, future, then, serial)
            return
        if serial is not None:
            serial.busy = True
        self.parked[k] += 1
        self.waiting.add(future)
        future.add_done_callback(lambda f: self._resumed(k, f, then, serial))

    def _resumed(self, k, future, then, serial):
        self.parked[k] -= 1
        self.waiting.discard(future)
        if self.cancelled:
            return
        gears_async.step_active = True
        try:
            self._resolve(k, future, then, serial)
            self._maybe_end(k)
        finally:
            gears_async.step_active = False

    def _resolve(self, k, future, then, serial):
        try:
            value = future.result()
        except asyncio.CancelledError as exc:
            self.errors.append(gears_async.ATOMIC_AWAIT if str(exc) == gears_async.ATOMIC_AWAIT else FORCED_STOP)
        except Exception as exc:
            self.fail(exc)
        else:
            try:
                then(value)
            except Exception as exc:
                self.fail(exc)
        if serial is not None:
            serial.busy = False
            while serial.queue and not serial.busy:
                self.push(k, serial.queue.pop(0))

    def cancel(self):
        """Abort: parked records are dropped and their coroutines cancelled."""
        self.cancelled = True
        for future in list(self.waiting):
            future.cancel()
        self.waiting.clear()

    # ---- ending -----------------------------------------------------------------------
    def _maybe_end(self, k):
        n = len(self.stages)
        while k < n and self.ended[k] and not self.finished[k] and self.parked[k] == 0:
            state = self.state[k]
            if state is not None and (state.busy or state.queue):
                return
            self.finished[k] = True
            _, handler, args = self.stages[k]
            finish = _FINISH.get(handler)
            if finish is not None:
                finish(self, k, state, *args)
            self.ended[k + 1] = True
            k += 1
        if k == n and self.ended[n] and not self.done:
            self.done = True
            if self.on_done is not None:
                self.on_done()


# ---- the steps: handler(run, k, record, *args) ------------------------------------------
def _map(run, k, record, f):
    value = run.call(k, f, record)
    if _waits(value):
        run.park(k, value, lambda v: run.push(k + 1, v))
    else:
        run.push(k + 1, value)


def _expand(run, k, value):
    if isinstance(value, list):
        for v in value:
            run.push(k + 1, v)
    else:
        run.push(k + 1, value)


def _flatmap(run, k, record, f):
    value = run.call(k, f, record)
    if _waits(value):
        run.park(k, value, lambda v: _expand(run, k, v))
    else:
        _expand(run, k, value)


def _filter(run, k, record, f):
    value = run.call(k, f, record)
    if _waits(value):
        run.park(k, value, lambda v: run.push(k + 1, record) if v else None)
    elif value:
        run.push(k + 1, record)


def _foreach(run, k, record, f):
    value = run.call(k, f, record)
    if _waits(value):
        run.park(k, value, lambda v: run.push(k + 1, record))
    else:
        run.push(k + 1, record)


def _accumulate(run, k, record, f):
    state = run.state[k]
    if state.busy:
        state.queue.append(record)
        return
    value = run.call(k, f, state.value, record)
    if _waits(value):
        run.park(k, value, lambda v: setattr(state, "value", v), state)
    else:
        state.value = value


def _accumulatebykey(run, k, record, extract, reduce):
    state = run.state[k]
    if state.busy:
        state.queue.append(record)
        return
    key = _not_async(run.call(k, extract, record), "extractor")
    value = run.call(k, reduce, key, state.groups.get(key), record)
    if _waits(value):
        run.park(k, value, lambda v: state.groups.__setitem__(key, v), state)
    else:
        state.groups[key] = value


def _groupby(run, k, record, extract, reduce):
    key = _not_async(run.call(k, extract, record), "extractor")
    run.state[k].groups.setdefault(key, []).append(record)


def _limit(run, k, record, length, start):
    state = run.state[k]
    seen = state.value = (state.value or 0) + 1
    if seen >= start + length:
        run.saturated = True
    if start < seen <= start + length:
        run.push(k + 1, record)


def _finish_accumulate(run, k, state, f):
    run.push(k + 1, state.value)


def _finish_accumulatebykey(run, k, state, extract, reduce):
    for key, value in state.groups.items():
        run.push(k + 1, {"key": key, "value": value})


def _finish_groupby(run, k, state, extract, reduce):
    for key, records in state.groups.items():
        try:
            value = _not_async(run.call(k, reduce, key, records), "reducer")
        except Exception as exc:
            run.fail(exc)
            continue
        run.push(k + 1, {"key": key, "value": value})


_HANDLERS = {"map": _map, "flatmap": _flatmap, "filter": _filter, "foreach": _foreach,
             "accumulate": _accumulate, "accumulatebykey": _accumulatebykey, "groupby": _groupby,
             "limit": _limit}
_STATEFUL = (_accumulate, _accumulatebykey, _groupby, _limit)
_FINISH = {_accumulate: _finish_accumulate, _accumulatebykey: _finish_accumulatebykey,
           _groupby: _finish_groupby}
