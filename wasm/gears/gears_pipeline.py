"""Running a flow: each record is pushed through the steps in turn.

A step whose callback returns something to wait for (a coroutine, an asyncio future, a
gearsFuture) parks that record until it resolves, while the other records go on; a step that
needs all of its input (accumulate, groupby, ...) ends only when nothing before it is parked.
Without async callbacks a run ends within the `feed` call that starts it.

Whatever a callback raises, `sys.exit()` and KeyboardInterrupt included (BaseException), is
an error of its record: it never escapes the entry (which would make the session unusable).
As in RedisGears 1.2 (execution_plan.c: the reader is only pulled while `ep->errors` is
empty), the first error stops the reading: records already on their way still finish.

Each step is a closure that takes one record and hands its output to the next step's closure:
no per-record dispatch, and no generator frames (this is the hot loop of every flow).
"""
import asyncio
import time
import types

import _gears_host
import gears_async

error = gears_async.error
FORCED_STOP = "Execution was aborted (forced stop)"
PASS_THROUGH = ("topyrecord", "collect", "repartition")
PER_RECORD = ("map", "flatmap", "filter", "foreach")
# What a step may return to make its record wait (the classes themselves: a set lookup).
_WAITS = frozenset({types.CoroutineType, asyncio.Future, asyncio.Task, gears_async.GearsFuture})
_async = gears_async


def _not_async(value, what):
    """Extractors and end-of-input reducers must answer at once."""
    if value.__class__ in _WAITS:
        if value.__class__ is types.CoroutineType:
            value.close()
        raise error("coroutine are not allow on %s" % what)  # 1.2's words
    return value


def _timed(f, timings, slot):
    """`f` adding its own time to timings[slot] (ProfileExecutions)."""
    def timed(*args):
        started = time.perf_counter()
        try:
            return f(*args)
        finally:
            timings[slot] += time.perf_counter() - started
    return timed


class _Serial:
    """State of a step that takes its records one at a time: an async reducer's result is
    the next call's input, so records that arrive meanwhile queue up."""

    def __init__(self):
        self.value, self.groups, self.busy, self.queue = None, {}, False, []
        self.fed = False  # a record arrived (an accumulator over none emits nothing, as in 1.2)


class Run:
    __slots__ = ("errors", "format_error", "timings", "results", "parked", "ended", "finished", "waiting",
                 "saturated", "done", "cancelled", "on_done", "entries", "finishers", "states", "reusable",
                 "recycle")

    def __init__(self, steps, errors, format_error, timings=None):
        stages = [(i, kind, args) for i, (kind, *args) in enumerate(steps) if kind not in PASS_THROUGH]
        n = len(stages)
        self.errors, self.format_error, self.timings = errors, format_error, timings
        self.results = []
        self.parked = [0] * n
        self.ended = [False] * (n + 1)
        self.finished = [False] * n
        self.waiting = set()
        self.saturated = False  # a limit() has all it will pass: reading can stop
        self.done = self.cancelled = False
        self.on_done = None
        self.recycle = None  # called once a waiting run has ended and been read (run_one)
        # entries[k](record) runs step k on a record; finishers[k]() ends it; states[k] is
        # the _Serial of a step that keeps state.
        self.entries = [None] * n + [self.results.append]
        self.finishers, self.states = [None] * n, [None] * n
        for k in reversed(range(n)):
            i, kind, args = stages[k]
            if timings is not None:
                args = [_timed(a, timings, i + 1) if callable(a) else a for a in args]
            self.entries[k], self.finishers[k], self.states[k] = _BUILD[kind](self, k, self.entries[k + 1], *args)
        # Steps that keep no state: once done, the run can take another record (events).
        self.reusable = all(kind in PER_RECORD for _, kind, _ in stages)

    # ---- feeding --------------------------------------------------------------------
    def feed(self, source):
        """Pushes every record of `source` (a reader) and ends the input."""
        with _async.step_scope():
            entry = self.entries[0]
            try:
                if self.timings is None:
                    for record in source:
                        entry(record)
                        if self.saturated:
                            break
                else:
                    it, timings = iter(source), self.timings
                    while not self.saturated:
                        started = time.perf_counter()
                        try:
                            record = next(it)
                        except StopIteration:
                            break
                        finally:
                            timings[0] += time.perf_counter() - started
                        entry(record)
            except BaseException as exc:  # the reader failed (sys.exit() too): the rest goes on
                self.fail(exc)
            self.ended[0] = True
            self._maybe_end(0)
        return self

    def feed_one(self, record, errors=None):
        """One record (an event) through a run of per-record steps: done at once unless it
        waits. Skips the reader loop of `feed`: this is the path of every event (so the
        step scope, and with `errors` the reset of a reused run, are inlined here)."""
        if errors is not None:
            if self.ended[0]:
                self.reset(errors)
            else:
                self.errors, self.done, self.saturated = errors, False, False
                self.results.clear()
        saved = _async.step_active, _async.created
        _async.step_active, _async.created = True, None
        try:
            self.entries[0](record)
        finally:
            _async.step_active, _async.created = saved
        if self.waiting:
            self.ended[0] = True
            self._maybe_end(0)  # the steps before the waiting record end now
        else:
            self.done = True
        return self

    def reset(self, errors):
        """A run that has ended, ready for new input (its results list is emptied)."""
        self.errors, self.done, self.saturated = errors, False, False
        self.results.clear()
        if self.ended[0]:  # it waited last time: its end-of-input state and callbacks go too
            self.ended = [False] * len(self.ended)
            self.finished = [False] * len(self.finished)
            self.on_done = self.recycle = None

    def fail(self, exc):
        _async.created = None
        self.saturated = True  # RedisGears 1.2: no record is read after an error
        self.errors.append(self.format_error(exc, exc.__traceback__))

    # ---- waiting ----------------------------------------------------------------------
    def park(self, k, awaitable, then, serial=None):
        """The record at step `k` waits for `awaitable`; `then(value)` continues it."""
        future = _async.start(awaitable)
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
        with _async.step_scope():
            self._resolve(k, future, then, serial)
            self._maybe_end(k)

    def _resolve(self, k, future, then, serial):
        try:
            value = future.result()
        except asyncio.CancelledError as exc:
            self.errors.append(_async.ATOMIC_AWAIT if str(exc) == _async.ATOMIC_AWAIT else FORCED_STOP)
        except BaseException as exc:
            self.fail(exc)
        else:
            try:
                then(value)
            except BaseException as exc:
                self.fail(exc)
        if serial is not None:
            serial.busy = False
            entry = self.entries[k]
            while serial.queue and not serial.busy:
                entry(serial.queue.pop(0))

    def cancel(self):
        """Abort: parked records are dropped and their coroutines cancelled."""
        self.cancelled = True
        for future in list(self.waiting):
            future.cancel()
        self.waiting.clear()

    # ---- ending -----------------------------------------------------------------------
    def _maybe_end(self, k):
        n = len(self.parked)
        while k < n and self.ended[k] and not self.finished[k] and self.parked[k] == 0:
            state = self.states[k]
            if state is not None and (state.busy or state.queue):
                return
            self.finished[k] = True
            if self.finishers[k] is not None:
                self.finishers[k]()
            self.ended[k + 1] = True
            k += 1
        if k == n and self.ended[n] and not self.done:
            self.done = True
            if self.on_done is not None:
                self.on_done()
            if self.recycle is not None:
                self.recycle()


# ---- the steps: _build_<kind>(run, k, next step's entry, *args) -> (entry, finisher, state)
_MAP, _FOREACH, _FILTER, _FLATMAP = range(4)


def _pass_on(kind, emit, record, value):
    """What a per-record step of `kind` hands on once its callback gave `value`."""
    if kind == _MAP:
        emit(value)
    elif kind == _FOREACH:
        emit(record)
    elif kind == _FILTER:
        if value:
            emit(record)
    elif isinstance(value, list):
        # RedisGears 1.2 pops a list's items from its end (ExecutionPlan_FlatMapNextRecord:
        # RedisGears_ListRecordPop), so they go on last first.
        for v in reversed(value):
            emit(v)
    else:
        emit(value)


def _per_record(kind):
    """The builder of a step calling `f(record)` once per record and handing on what `kind`
    says, now or once the value it waits for has resolved. map and foreach hand on inline:
    this is the loop of every flow."""
    def build(run, k, emit, f):
        def entry(record):
            try:
                value = f(record)
                if _async.created is not None:
                    value, _async.created = _async.created, None
                if value.__class__ in _WAITS:
                    return run.park(k, value, lambda v: _pass_on(kind, emit, record, v))
            except BaseException as exc:
                return run.fail(exc)
            if kind == _MAP:
                emit(value)
            elif kind == _FOREACH:
                emit(record)
            else:
                _pass_on(kind, emit, record, value)
        return entry, None, None
    return build


def _build_accumulate(run, k, emit, f):
    state = _Serial()

    def store(value):
        state.value = value

    def entry(record):
        state.fed = True
        if state.busy:
            return state.queue.append(record)
        try:
            value = f(state.value, record)
            if _async.created is not None:
                value, _async.created = _async.created, None
            if value.__class__ in _WAITS:
                return run.park(k, value, store, state)
        except BaseException as exc:
            state.value, state.fed = None, False  # 1.2 frees the accumulator on an error
            return run.fail(exc)
        state.value = value
    return entry, lambda: emit(state.value) if state.fed else None, state


def _group_key(key):
    """RedisGears 1.2 groups by text: a key that is not a str is its repr()."""
    return key if key.__class__ is str else repr(key)


def _build_accumulatebykey(run, k, emit, extract, reduce):
    """Groups come out in the order of RedisGears 1.2's C dict of them (GearsDict)."""
    state = _Serial()
    groups = state.groups
    order = _gears_host.GearsDict()

    def entry(record):
        if state.busy:
            return state.queue.append(record)
        key = None
        try:
            key = _group_key(_not_async(extract(record), "extractor"))
            new = not order.find(key)
            value = reduce(key, groups.get(key), record)
            if _async.created is not None:
                value, _async.created = _async.created, None
            if new:
                order.add(key)
            if value.__class__ in _WAITS:
                return run.park(k, value, lambda v: groups.__setitem__(key, v), state)
        except BaseException as exc:
            if key is not None:  # 1.2 drops the group whose reducer failed
                groups.pop(key, None)
                order.delete(key)
            return run.fail(exc)
        groups[key] = value

    def finish():
        for key in order.keys():
            if key in groups:
                emit({"key": key, "value": groups[key]})
    return entry, finish, state


def _build_groupby(run, k, emit, extract, reduce):
    state = _Serial()
    groups = state.groups

    def entry(record):
        try:
            key = _group_key(_not_async(extract(record), "extractor"))
        except BaseException as exc:
            return run.fail(exc)
        groups.setdefault(key, []).append(record)

    def finish():  # 1.2 pops its groups from the end: the last seen comes out first
        for key, records in reversed(groups.items()):
            try:
                value = _not_async(reduce(key, records), "reduce")
            except BaseException as exc:
                run.fail(exc)
                continue
            emit({"key": key, "value": value})
    return entry, finish, state


def _build_limit(run, k, emit, length, start):
    """records[start:start + length], with 1.2's size_t arithmetic (LimitNextRecord): a
    negative length is no limit, a negative start passes nothing."""
    start, end = start % (1 << 64), (start + length) % (1 << 64)
    seen = [0]

    def entry(record):
        index = seen[0]
        seen[0] = index + 1
        if start <= index < end:
            emit(record)
        if index + 1 >= end:
            run.saturated = True
    return entry, None, None


_BUILD = {"map": _per_record(_MAP), "flatmap": _per_record(_FLATMAP), "filter": _per_record(_FILTER),
          "foreach": _per_record(_FOREACH),
          "accumulate": _build_accumulate, "accumulatebykey": _build_accumulatebykey,
          "localaccumulatebykey": _build_accumulatebykey, "groupby": _build_groupby,
          "limit": _build_limit}
