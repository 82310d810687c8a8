"""The `gears` runtime: the host's entries into a session (scripts, executions, triggers,
events, timers), over the API a script sees (gears_api).

Imported once at build time (inside the Wizer snapshot). Every session is its own wasm
instance, so the module-level state here belongs to exactly one session.
"""
import asyncio
import random
import traceback
import types

import _gears_host
import gears_abi
import gears_api
import gears_async
import gears_shard_entries
import gears_encode
import gears_host
import gears_pipeline
import gears_profile
import gears_readers
from gears_api import configGet, error, flat_error, log

# An entry's payload -> [field, ...] (in C), each field as its kind letter says: b bytes (the
# default), s str, n a name (str, bytes if not UTF-8), v a value (str, bytearray if not UTF-8).
_decode_args = _gears_host.decode_args

session_globals = None  # the globals of this session's script, shared by its later callbacks


_RUNTIME_FILES = "/lib/python313.zip/gears_"


def _user_frames(tb):
    """The traceback without the runtime's own frames: users see only their code."""
    frames = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_RUNTIME_FILES):
            frames.append(tb)
        tb = tb.tb_next
    chain = None
    for t in reversed(frames):
        chain = types.TracebackType(chain, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return chain


def format_error(exc, tb):
    """The error text of spec §2.9, as RedisGears' getPyError() builds it."""
    if isinstance(exc, flat_error):
        return str(exc)
    try:
        tb = _user_frames(tb)
        if tb is not None and configGet("wasmgears.PythonAttemptTraceback") != "0":
            return str(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # e.g. MemoryError, or the stdlib made unreadable by the script
        pass
    try:
        return "Error type: %s, Value: %s" % (type(exc), exc)
    except BaseException:
        return "Error type: %s" % type(exc).__name__


_time_events = gears_api.time_events  # time event id (from the host) -> callback
_flows = {}  # execution id -> Flow, from run() until the host runs it
_script_ran = False
_in_script = False  # the script's top level is running (run() creates a host execution)
_registrations = {}  # registration id -> Flow
_trigger_names = set()  # the triggers of _registrations (a set: a script may register thousands)
_staged = []  # (id, onRegistered) of this script's registrations, applied if it succeeds
_deferred = {}  # host token -> (Run, registration id or None) of runs whose records wait
_registration_specs = {}  # registration id -> (spec fields, onRegistered): what another shard needs


def _exec_script(source):
    """Runs a script's top level in a fresh copy of the base globals. None, or the error text."""
    global session_globals, _script_ran, _in_script
    session_globals = dict(gears_api.BASE)
    _script_ran = False
    gears_async.new_entry()
    try:
        wheels = gears_host.request("requirements")
        if wheels:
            import gears_wheels
            gears_wheels.install(wheels)
        code = compile(source, "<string>", "exec")
        _in_script = True
        try:
            exec(code, session_globals)
        finally:
            _in_script = False
        for registration_id, on_registered in _staged:
            if on_registered is not None:
                try:
                    on_registered()
                except BaseException as exc:  # 1.2 (RedisGearsPy_OnRegistered) only logs it
                    log("Failed calling onRegistered for %s: %s" % (registration_id, format_error(exc, None)),
                        level="warning")
        gears_async.after_entry()
        return None
    except BaseException as exc:
        _flows.clear()  # a failing script starts nothing and registers nothing
        for registration_id, _ in _staged:
            _registration_specs.pop(registration_id, None)
            flow = _registrations.pop(registration_id, None)
            if flow is not None and _is_trigger(flow):
                _trigger_names.discard(flow.arg)
        return format_error(exc, exc.__traceback__)
    finally:
        _staged.clear()


def _create_execution(flow):
    """run(): at the script's top level the host allocates an execution and runs it once the
    script is done. Elsewhere (a callback, a coroutine) the flow runs here and now, and
    run() returns a future of [[results], [errors]] (`await GB().run()`)."""
    global _script_ran
    if not _in_script:
        errors = []
        run = flow.start(errors, format_error)
        future = gears_async.loop().create_future()
        run.on_done = lambda: future.done() or future.set_result([run.results, errors])
        if run.done:
            run.on_done()
        return future
    if _script_ran:
        raise error("Can not run more then 1 executions in a single script")
    _script_ran = True
    execution_id = gears_host.request("create_execution", *flow.plan())
    _flows[execution_id] = flow
    return execution_id


def _register(flow, fields, on_registered):
    """register(): staged with the host, which applies it once the script has succeeded.
    `fields`: the spec's name/value pairs (crates/abi/src/registration.rs)."""
    trigger = _is_trigger(flow)
    if trigger and flow.arg in _trigger_names:
        raise error("trigger already registered in this session")
    registration_id = gears_host.request("create_registration", *fields)
    _registrations[registration_id] = flow
    _registration_specs[registration_id] = (fields, on_registered)
    if trigger:
        _trigger_names.add(flow.arg)
    _staged.append((registration_id, on_registered))
    return registration_id


def _is_trigger(flow):
    return flow.reader == "CommandReader" and not flow.kwargs.get("hook")


def _finish(run, encode, owner=None):
    """The entry's encoded results, or, while records of `run` wait, a placeholder: the host
    gets a token now and the results with it when the run ends (in a later entry)."""
    if run.done:
        return encode()
    token = gears_host.request("defer")
    _deferred[token] = (run, owner)

    def done():
        _deferred.pop(token, None)
        gears_host.request("complete", str(token), encode())
    run.on_done = done
    return gears_encode.encode_results([], [])


def _not_here(registration_id):
    return gears_encode.encode_results([], ["registration %s is not in this session" % registration_id])


@gears_profile.profiled
def _run_trigger(payload):
    """A trigger fired: payload = encoded [registration id, trigger, args...]; encoded results."""
    registration_id, *record = _decode_args(payload, b"sv")  # the args as get_command() gives them
    flow = _registrations.get(registration_id)
    if flow is None:
        return _not_here(registration_id)
    errors = []
    run = flow.run_one(record, errors, format_error)
    if run.done:
        return gears_encode.encode_results(run.results, errors)
    return _finish(run, lambda: gears_encode.encode_results(run.results, errors), registration_id)


@gears_profile.profiled
def _run_key_event(payload):
    """A key event: payload = encoded [registration id, key, event] (+ [type, string value]
    when the host read the key as the event fired); encoded results."""
    registration_id, key, event, *read = _decode_args(payload, b"snssv")
    flow = _registrations.get(registration_id)
    if flow is None:
        return _not_here(registration_id)
    read_value = flow.kwargs.get("readValue", True)
    if read_value and len(read) == 2:  # a string the host read as the event fired (the hot path)
        record = {"event": event, "key": key, "type": "string", "value": read[1]}
    else:
        record = gears_readers.key_event_record(key, event, read_value, read)
    errors = []
    run = flow.run_one(record, errors, format_error)
    # Nobody reads an event's results: only its errors.
    if run.done:
        return gears_encode.encode_results((), errors)
    return _finish(run, lambda: gears_encode.encode_results([], errors), registration_id)


# RedisGears 1.2's names (streams_reader.c): one consumer group and one consumer for every
# StreamReader registration, so the group is where a registration is in a stream (saved with
# the stream, replicated with it, seen in XINFO GROUPS).
STREAM_GROUP = "__gears_consumer_group__"
STREAM_CONSUMER = "__gears_client__"


def _read_group(key, read_pending, count):
    """One XREADGROUP of `key`: the entries delivered before and never acknowledged (id `0`)
    or new ones (`>`); the group is created at the stream's start the first time, as 1.2
    does on its first NOGROUP. [] when there is nothing (or no stream any more)."""
    command = ["XREADGROUP", "GROUP", STREAM_GROUP, STREAM_CONSUMER]
    if count > 0:
        command += ["COUNT", str(count)]
    command += ["STREAMS", key, "0" if read_pending else ">"]
    try:
        reply = gears_host.call(command)
    except error:
        try:
            gears_host.call(["XGROUP", "CREATE", key, STREAM_GROUP, "0"])
        except error:
            pass  # it exists (or the key is not a stream: the read says so)
        try:
            reply = gears_host.call(command)
        except error:
            return []
    if not reply:
        return []
    return reply[0][1]


def _next_id(entry_id):
    """The smallest id after `entry_id` (XTRIM MINID keeps it and everything newer)."""
    ms, seq = (int(part) for part in entry_id.split("-"))
    return "%d-%d" % ((ms, seq + 1) if seq < 2**64 - 1 else (ms + 1, 0))


def _acknowledge(key, entries, trim):
    """XACK a processed batch; with `trim`, XTRIM what no run still holds: everything before
    the oldest entry still pending (read by a batch whose async records have not finished),
    or, with none pending, everything up to this batch's last entry."""
    try:  # as 1.2, a stream changed under us is logged, not fatal
        gears_host.call(["XACK", key, STREAM_GROUP] + [entry_id for entry_id, _ in entries])
        if trim == "1":
            summary = gears_host.call(["XPENDING", key, STREAM_GROUP])
            oldest_pending = summary[1] if summary and summary[0] else None
            gears_host.call(["XTRIM", key, "MINID", oldest_pending or _next_id(entries[-1][0])])
    except error as exc:
        log("Failed acking or trimming messages of %r: %s" % (key, exc), "warning")


def _acknowledges(errors, policy):
    """A batch is acknowledged when it succeeded, or its failures are skipped (policy
    'continue'); never when an error pauses it or it was stopped before it ended."""
    if not errors:
        return True
    if str(errors[0]).startswith("PAUSE") or gears_pipeline.FORCED_STOP in errors:
        return False
    return policy == "continue"


def _run_stream_batch(registration_id, key, read_pending, count, trim, policy):
    """A batch of stream `key` through the registration's flow: up to `count` new entries
    (0: no limit), or with `read_pending` the ones read before and not acknowledged (after a
    restart, a failover, a pause or a failure). It is acknowledged (and trimmed) once all its
    records are done, as in 1.2: records that wait (async steps) finish later, and until then
    their entries stay pending, so a crash meanwhile gives them to the next start. Results:
    [number read, last id] and the errors of the synchronous part; later errors are logged."""
    flow = _registrations.get(registration_id)
    if flow is None:
        return _not_here(registration_id)
    entries = _read_group(key, read_pending == "1", int(count))
    # A pending entry deleted since it was read comes back without fields: only acknowledged.
    records = [{"key": key, "id": entry_id, "value": gears_readers.field_dict(fields)}
               for entry_id, fields in entries if fields is not None]
    errors = []
    run = flow.start(errors, format_error, source=records)
    if run.done:
        if entries and _acknowledges(errors, policy):
            _acknowledge(key, entries, trim)
    else:
        reported = len(errors)

        def finish_later():
            for e in errors[reported:]:
                log("registration %s: %s" % (registration_id, e), "warning")
            if entries and _acknowledges(errors, policy):
                _acknowledge(key, entries, trim)
            elif entries:
                log("registration %s: %d entries of %r stay pending (read again at the next start)"
                    % (registration_id, len(entries), key), "warning")
        run.on_done = finish_later
    last = entries[-1][0] if entries else ""
    return gears_encode.encode_results([len(entries), last], errors)


def _run_time_event(event_id):
    """One tick of a time event: encoded [[], [errors]]; an error stops it. An async
    callback runs on the session's loop (its errors are logged)."""
    callback = _time_events.get(event_id)
    if callback is None:
        return gears_encode.encode_results([], ["time event %d is not in this session" % event_id])
    try:
        result = callback()
        if asyncio.iscoroutine(result):
            gears_async.loop().create_task(result)
        return gears_encode.encode_results([], [])
    except BaseException as exc:  # sys.exit() too: the event stops, the session goes on
        _time_events.pop(event_id, None)
        return gears_encode.encode_results([], [format_error(exc, exc.__traceback__)])


def _cancel(token=None, registration_id=None):
    """Abort: the waiting runs (of one token, or of one registration) end with the forced-stop
    error, which their host callers receive as their results."""
    for t, (run, owner) in list(_deferred.items()):
        if t == token or (registration_id is not None and owner == registration_id):
            run.cancel()
            run.errors.append(gears_pipeline.FORCED_STOP)
            run.done = True
            run.on_done()
    return gears_encode.encode_results([], [])


@gears_profile.profiled
def _run_execution(payload):
    """Runs a created flow (payload: its id); the encoded [[results], [errors]] (+ per-step
    durations)."""
    execution_id = payload.decode("utf-8", "replace")
    flow = _flows.pop(execution_id, None)
    if flow is None:
        return gears_encode.encode_results([], ["execution %s has no flow in this session" % execution_id])
    errors = []
    timings = [0.0] * (len(flow.steps) + 1) if gears_profile.on else None
    run = flow.start(errors, format_error, timings)

    def encode():
        durations = flow.step_durations_ms(timings) if timings is not None else None
        return gears_encode.encode_results(run.results, errors, durations)
    return _finish(run, encode)


def _reseed(_payload):
    random.seed()


def _fields(payload):
    return _decode_args(payload, b"s")


def _stream_fields(payload):
    """A stream batch's fields: its key exactly as named (str, or bytes if not UTF-8)."""
    return _decode_args(payload, b"sns")


def _self_test(payload):
    import gears_selftest
    return "\n".join(gears_selftest.check(payload.decode(), gears_host)).encode()


# The host's entries, by the codes of gears_abi.GUEST_ENTRIES: each takes the raw payload.
_ENTRIES = {
    "reseed": _reseed,
    "exec_script": _exec_script,
    "run_execution": _run_execution,
    "run_trigger": _run_trigger,
    "key_event": _run_key_event,
    "stream_batch": gears_profile.profiled(lambda p: _run_stream_batch(*_stream_fields(p))),
    "time_event": gears_profile.profiled(lambda p: _run_time_event(int(_fields(p)[0]))),
    # A timer of the session's event loop is due: the epilogue runs it.
    "loop": gears_profile.profiled(lambda p: gears_encode.encode_results([], [])),
    "cancel": gears_profile.profiled(lambda p: _cancel(token=int(_fields(p)[0]))),
    "cancel_registration": gears_profile.profiled(lambda p: _cancel(registration_id=_fields(p)[0])),
    "profile": lambda p: gears_profile.request(*_fields(p)),
    "self_test": _self_test,
}
_ENTRIES.update(gears_shard_entries.ENTRIES)
# code -> (entry, whether it runs flows: see gears_profile.profiled)
_BY_CODE = {gears_abi.GUEST_ENTRIES[name]: (entry, getattr(entry, "runs_flows", False))
            for name, entry in _ENTRIES.items()}
assert len(_BY_CODE) == len(gears_abi.GUEST_ENTRIES), "every guest entry has a handler"
_PROFILE_FLAG, _CODE_MASK = gears_abi.ENTRY_FLAGS["profile"], gears_abi.ENTRY_FLAGS["code_mask"]


def _enter(op, payload):
    """The one entry point (glue.c's gears_enter): None, bytes (output) or str (error). `op`
    is the entry's code with the host's flags (ProfileExecutions) or-ed in."""
    found = _BY_CODE.get(op & _CODE_MASK)
    if found is None:
        return gears_encode.encode_results([], ["unknown entry %r" % op])
    entry, runs_flows = found
    gears_profile.on = profile = bool(op & _PROFILE_FLAG)
    if not runs_flows:
        return entry(payload)
    gears_async.new_entry()
    if profile:
        return gears_profile.run_profiled(entry, payload)
    out = entry(payload)
    if gears_async._loop is not None:  # what the entry made ready runs now
        gears_async.after_entry()
    return out
