"""GearsBuilder / GB(): build a flow, and run it over Python objects inside the guest.

A flow is a reader plus a list of steps. Standalone, the global steps (collect,
repartition) keep the records where they are, and groupby is a local group-and-reduce.
"""
import copy
import types

import gears_abi
import gears_host
import gears_pipeline
import gears_readers

error = gears_host.error

# The steps RedisGears 1.2 builds for each of ours, as RG.GETEXECUTION shows them: (type, name,
# whether the step's arg is ours). The first is the one that runs our step's callback
# (execution_plan.h STEP_TYPES; redisgears_python.c: flatmap is a map plus a flatmap, groupby an
# extractkey, repartition, accumulatebykey and a map back to a Python record, ...).
_PLAN = {
    "topyrecord": [("map", "RedisGearsPy_ToPyRecordMapper", False)],
    "map": [("map", "RedisGearsPy_PyCallbackMapper", True)],
    "flatmap": [("map", "RedisGearsPy_PyCallbackFlatMapper", True), ("flatmap", "flatmap", False)],
    "filter": [("filter", "RedisGearsPy_PyCallbackFilter", True)],
    "foreach": [("foreach", "RedisGearsPy_PyCallbackForEach", True)],
    "accumulate": [("accumulate", "RedisGearsPy_PyCallbackAccumulate", True)],
    "localaccumulatebykey": [("accumulatebykey", "RedisGearsPy_PyCallbackAccumulateByKey", True),
                             ("map", "RedisGearsPy_ToPyRecordMapper", False)],
    "accumulatebykey": [("accumulatebykey", "RedisGearsPy_PyCallbackAccumulateByKey", True),
                        ("map", "RedisGearsPy_ToPyRecordMapper", False)],
    "limit": [("limit", "limit", False)],
    "collect": [("collect", "collect", False)],
    "repartition": [("map", "GetValueMapper", False)],
    "groupby": [("reduce", "RedisGearsPy_PyCallbackReducer", True), ("map", "RedisGearsPy_ToPyRecordMapper", False)],
}
# Steps 1.2 puts before the one that runs the callback: the key extraction (and the move).
_BEFORE = {"accumulatebykey": [("extractkey", "RedisGearsPy_PyCallbackExtractor", True), ("repartition", "repartition", False)],
           "localaccumulatebykey": [("extractkey", "RedisGearsPy_PyCallbackExtractor", True)],
           "repartition": [("extractkey", "RedisGearsPy_PyCallbackExtractor", True), ("repartition", "repartition", False)],
           "groupby": [("extractkey", "RedisGearsPy_PyCallbackExtractor", True), ("repartition", "repartition", False),
                       ("group", "group", False)]}


def _check_function(op, func, nargs):
    """RedisGears' checks: a Python function (not a builtin) taking `nargs` arguments."""
    if not isinstance(func, types.FunctionType):
        raise error("%s argument must be a function" % op)
    code = func.__code__
    required = code.co_argcount - len(func.__defaults__ or ())
    takes_varargs = bool(code.co_flags & 0x04)
    if required > nargs or (code.co_argcount < nargs and not takes_varargs):
        raise error("wrong number of args to %s function" % op)
    return func


def _operation(nargs, optional=0):
    """RedisGears' check on the arguments given to an operation (not to its callback)."""
    def wrap(method):
        def checked(self, *args, **kwargs):
            given = len(args) + len(kwargs)
            if not nargs <= given <= nargs + optional:
                raise error("wrong number of args to %s function" % method.__name__)
            return method(self, *args, **kwargs)
        checked.__name__ = method.__name__
        checked.__doc__ = method.__doc__
        return checked
    return wrap


class GearsBuilder:
    def __init__(self, reader="KeysReader", defaultArg="*", desc=None):
        if not isinstance(reader, str):
            raise error("reader argument must be a string")
        if reader not in gears_readers.READERS and reader not in gears_readers.REGISTER_ONLY:
            raise error("The given reader does not exists")
        if desc is not None and not isinstance(desc, str):
            raise error("desc argument must be a string")
        self.reader = reader
        self.defaultArg = defaultArg
        self.desc = desc
        self.steps = [("topyrecord", None)]

    def _add(self, kind, *args):
        self.steps.append((kind,) + args)
        return self

    # ---- local operations -------------------------------------------------------------
    @_operation(1)
    def map(self, f):
        return self._add("map", _check_function("map", f, 1))

    @_operation(1)
    def flatmap(self, f):
        return self._add("flatmap", _check_function("flatmap", f, 1))

    @_operation(1)
    def filter(self, f):
        return self._add("filter", _check_function("filter", f, 1))

    @_operation(1)
    def foreach(self, f):
        return self._add("foreach", _check_function("foreach", f, 1))

    @_operation(1)
    def accumulate(self, f):
        return self._add("accumulate", _check_function("accumulate", f, 2))

    @_operation(2)
    def localgroupby(self, e, r):
        return self._add("localaccumulatebykey", _check_function("groupby extractor", e, 1),
                         _check_function("groupby reducer", r, 3))

    @_operation(1, 1)
    def limit(self, length, start=0):
        if not isinstance(length, int) or not isinstance(start, int):
            raise error("limit argument must be a number")
        return self._add("limit", length, start)

    # ---- global operations (standalone: local) ----------------------------------------
    @_operation(0)
    def collect(self):
        return self._add("collect")

    @_operation(1)
    def repartition(self, f):
        return self._add("repartition", _check_function("repartition", f, 1))

    @_operation(2)
    def groupby(self, e, r):
        return self._add("accumulatebykey", _check_function("groupby extractor", e, 1),
                         _check_function("groupby reducer", r, 3))

    @_operation(2)
    def batchgroupby(self, e, r):
        return self._add("groupby", _check_function("batchgroupby extractor", e, 1),
                         _check_function("batchgroupby reducer", r, 2))

    # ---- sugar, as RedisGears 1.2 builds it (GearsBuilder.py) --------------------------
    # Its accumulators start over from `zero` whenever they are falsy (`a if a else zero`).
    @_operation(3)
    def aggregate(self, z, seqOp, combOp):
        _check_function("aggregate", seqOp, 2)
        _check_function("aggregate", combOp, 2)
        self.accumulate(lambda a, r: seqOp(a if a else copy.deepcopy(z), r))
        self.collect()
        return self.accumulate(lambda a, r: combOp(a if a else copy.deepcopy(z), r))

    @_operation(4)
    def aggregateby(self, e, z, seqOp, combOp):
        _check_function("aggregateby", seqOp, 3)
        _check_function("aggregateby", combOp, 3)
        self.localgroupby(lambda x: e(x), lambda k, a, r: seqOp(k, a if a else copy.deepcopy(z), r))
        return self.groupby(lambda r: r["key"], lambda k, a, r: combOp(k, a if a else copy.deepcopy(z), r["value"]))

    @_operation(0)
    def count(self):
        self.accumulate(lambda a, r: 1 + (a if a else 0))
        self.collect()
        return self.accumulate(lambda a, r: r + (a if a else 0))

    @_operation(0, 1)
    def countby(self, extractor=lambda x: x):
        return self.aggregateby(extractor, 0, lambda k, a, r: 1 + a, lambda k, a, r: r + a)

    @_operation(0, 1)
    def avg(self, extractor=lambda x: float(x)):
        self.map(extractor)
        self.aggregate((0, 0), lambda a, r: (a[0] + r, a[1] + 1), lambda a, r: (a[0] + r[0], a[1] + r[1]))
        return self.map(lambda x: x[0] / x[1])

    @_operation(0)
    def distinct(self):
        self.aggregate(set(), lambda a, r: a | set([r]), lambda a, r: a | r)
        return self.flatmap(lambda x: list(x))

    @_operation(0, 1)
    def sort(self, reverse=True):
        """flatmap emits a list last item first, so the default (reverse=True) is ascending."""
        self.aggregate([], lambda a, r: a + [r], lambda a, r: a + r)
        self.map(lambda r: sorted(r, reverse=reverse))
        return self.flatmap(lambda r: r)

    # ---- running ------------------------------------------------------------------------
    def run(self, arg=None, convertToStr=True, collect=True, **kwargs):
        import gears_runtime

        if self.reader in gears_readers.REGISTER_ONLY:
            raise error("Given reader do not support run or not exists")
        mode = kwargs.pop("mode", "async")
        if mode not in ("async", "async_local"):
            raise error("unknown execution mode")
        arg = arg if arg else self.defaultArg  # as 1.2: a falsy argument is the default one
        if self.reader == "PythonReader":
            if arg is None:
                raise error("python reader function is not given")
            if not isinstance(arg, types.FunctionType):
                raise error("pyreader argument must be a function")
        elif not isinstance(arg, str) and not (self.reader == "StreamReader" and isinstance(arg, bytes)):
            raise error("%s argument must be a string" % self.reader)
        steps = list(self.steps)
        if convertToStr:
            steps.append(("map", str))
        if collect:
            steps.append(("collect",))
        flow = Flow(self.reader, arg, kwargs, steps)
        flow.mode = mode
        return gears_runtime._create_execution(flow)

    def register(self, prefix="*", convertToStr=True, collect=True, **kwargs):
        """Registers the flow; applied only if the whole script succeeds. Returns its id."""
        import gears_runtime

        mode = kwargs.pop("mode", "async")
        if not isinstance(mode, str):
            raise error("execution mode must be a string")
        if mode not in ("async", "async_local", "sync"):
            raise error("unknown execution mode")
        on_registered = kwargs.pop("onRegistered", None)
        if on_registered is not None and not isinstance(on_registered, types.FunctionType):
            raise error("OnRegistered argument must be a function")
        if self.reader == "KeysReader":
            specific = _keys_registration(prefix, mode, kwargs)
            flow_kwargs, arg = {"readValue": specific["readValue"] == "1"}, specific["prefix"]
        elif self.reader == "CommandReader":
            specific = _command_registration(mode, kwargs)
            flow_kwargs, arg = {"hook": "hook" in specific}, specific.get("trigger") or specific.get("hook")
        elif self.reader == "StreamReader":
            specific = _stream_registration(prefix, mode, kwargs)
            flow_kwargs, arg = {}, specific["prefix"]
        else:
            raise error("given reader does not exists or does not support register")
        steps = list(self.steps)
        # Only CommandReader results reach anyone (RG.TRIGGER, hooks); for key and stream
        # events the trailing str() of every record would be work thrown away.
        if convertToStr and self.reader == "CommandReader":
            steps.append(("map", str))
        if collect and self.reader == "CommandReader":
            steps.append(("collect",))
        flow = Flow(self.reader, arg, flow_kwargs, steps)
        spec = {"reader": self.reader, "mode": mode}
        if self.desc is not None:
            spec["desc"] = self.desc
        spec.update(specific)
        fields = [part for pair in spec.items() for part in pair]
        return gears_runtime._register(flow, fields, on_registered)


_KEY_TYPES = ("string", "hash", "list", "set", "zset", "stream", "module", "empty")


def _names(value, plural, singular):
    """A list of names as the spec sends it (comma-joined; None: the field is left out),
    checked with 1.2's words (keys_reader.c). Any iterable will do, a str too (its letters)."""
    if value is None:
        return None
    try:
        names = list(value)
    except TypeError:
        raise error("given %s is not iterable" % plural) from None
    if not all(isinstance(n, str) for n in names):
        raise error("given %s is not string" % singular)
    return names


# Commands a hook or commands= may not wrap: transactions, scripts, connection state, ours.
_UNHOOKABLE = {"multi", "exec", "discard", "watch", "unwatch", "eval", "evalsha", "eval_ro", "evalsha_ro",
               "fcall", "fcall_ro", "script", "function", "subscribe", "psubscribe", "ssubscribe",
               "unsubscribe", "punsubscribe", "sunsubscribe", "monitor", "auth", "hello", "quit", "reset",
               "client", "shutdown", "sync", "psync", "replconf", "debug", "module", "blpop", "brpop",
               "blmove", "brpoplpush", "bzpopmin", "bzpopmax", "blmpop", "bzmpop", "xread", "xreadgroup",
               "wait", "waitaof"}


def _check_hookable(command, what):
    """A command name that exists and that RedisGears would let a hook or commands= wrap."""
    if not isinstance(command, str):
        raise error("%s must be a string" % what)
    name = command.lower()
    if not gears_host.call(["COMMAND", "INFO", name])[0]:  # 1.2's words (command_hook.c)
        raise error("Can not override an unexisting command")
    if name.startswith("rg.") or name in _UNHOOKABLE:
        raise error("Can not override a command which are not allowed inside a script")
    return name


def _keys_registration(prefix, mode, kwargs):
    """A KeysReader's spec fields (crates/abi/src/registration.rs)."""
    prefix = kwargs.pop("regex", prefix)
    if not isinstance(prefix, str):
        raise error("regex argument must be a string")
    commands = _names(kwargs.pop("commands", None), "commands", "command type")
    if commands is not None:
        commands = [_check_hookable(c, "commands argument") for c in commands]
    event_types = _names(kwargs.pop("eventTypes", None), "eventTypes", "event type")
    key_types = _names(kwargs.pop("keyTypes", None), "keyTypes", "key type")
    if key_types is not None and any(t not in _KEY_TYPES for t in key_types):  # 1.2: strcmp
        raise error("unknown key type")
    read_value = kwargs.pop("readValue", True)
    if not isinstance(read_value, bool):
        raise error("readValue is not boolean")
    spec = {"prefix": prefix, "readValue": "1" if read_value else "0"}
    # Kept as given (1.2 dumps them so; events match without regard to case).
    for name, names in (("eventTypes", event_types), ("keyTypes", key_types), ("commands", commands)):
        if names is not None:
            spec[name] = ",".join(names)
    return spec


def _command_registration(mode, kwargs):
    """A CommandReader's spec fields (crates/abi/src/registration.rs)."""
    trigger, hook = kwargs.pop("trigger", None), kwargs.pop("hook", None)
    keyprefix, inorder = kwargs.pop("keyprefix", None), kwargs.pop("inorder", False)
    if trigger is None and hook is None:
        raise error("no trigger or hook argument was given")
    if trigger is not None and (hook is not None or keyprefix is not None):
        raise error("trigger argument can not be given with keyprefix or hook")
    if not isinstance(inorder, bool):
        raise error("inorder argument is be boolean")
    if hook is not None:
        if keyprefix is not None and not isinstance(keyprefix, str):
            raise error("keyprefix argument is not string")
        spec = {"hook": _check_hookable(hook, "hook argument"), "inorder": "1" if inorder else "0"}
        if keyprefix:
            spec["keyprefix"] = keyprefix
        return spec
    if not isinstance(trigger, str):
        raise error("trigger argument is not string")
    return {"trigger": trigger, "inorder": "1" if inorder else "0"}


_POLICIES = ("continue", "abort", "retry")


def _stream_registration(prefix, mode, kwargs):
    """A StreamReader's spec fields (crates/abi/src/registration.rs)."""
    prefix = kwargs.pop("regex", prefix)
    if not isinstance(prefix, str):
        raise error("prefix argument must be a string")
    batch, duration = kwargs.pop("batch", 1), kwargs.pop("duration", 0)
    trim, policy = kwargs.pop("trimStream", True), kwargs.pop("onFailedPolicy", "continue")
    retry = kwargs.pop("onFailedRetryInterval", 1)
    for name, value in (("batch", batch), ("duration", duration), ("retryInterval", retry)):
        if not isinstance(value, int):  # 1.2's words (streams_reader.c)
            raise error("%s argument must be a number" % name)
        if isinstance(value, bool) or value < 0:
            raise error("%s argument must be a non-negative integer" % name)
    if batch < 1:
        raise error("batch argument must be a positive integer")
    # Longer intervals cannot be meant (gears_abi.MAX_INTERVAL_SECS, about 68 years).
    longest = gears_abi.MAX_INTERVAL_SECS
    if duration > longest * 1000:
        raise error("duration argument must be at most %d (ms)" % (longest * 1000))
    if retry > longest:
        raise error("onFailedRetryInterval argument must be at most %d (seconds)" % longest)
    if not isinstance(trim, bool):
        raise error("pyTrimmStream argument must be a boolean")
    if not isinstance(policy, str):
        raise error("onFailedPolicy must be a string (Continue/Abort/Retry)")
    if policy.lower() not in _POLICIES:
        raise error("onFailedPolicy must be Continue/Abort/Retry")
    policy = policy.lower()
    if mode == "sync" and policy != "continue":
        raise error("ExecutionMode sync can only be combined with OnFailedPolicy Continue")
    return {"prefix": prefix, "batch": str(batch), "duration": str(duration), "trimStream": "1" if trim else "0",
            "onFailedPolicy": policy, "onFailedRetryInterval": str(retry)}


class Flow:
    """A flow ready to run: reader, its argument and kwargs, steps."""

    mode = "async"  # run(mode=...): "async_local" never leaves its shard

    def __init__(self, reader, arg, kwargs, steps):
        self.reader, self.arg, self.kwargs, self.steps = reader, arg, kwargs, steps
        self._spare = None  # a finished run of per-record steps, reused by the next event

    def start(self, errors, format_error, timings=None, source=None):
        """A run of the flow over `source` (else its reader), fed: done unless records wait.
        With `timings` ([0.0] * (steps + 1)), each stage's own time is added there."""
        if source is None:
            source = gears_readers.READERS[self.reader](self.arg, **self.kwargs)
        return gears_pipeline.Run(self.steps, errors, format_error, timings).feed(source)

    def run_one(self, record, errors, format_error):
        """One event's record through the flow: its run, done unless the record waits. Read
        `results` at once: a done run of per-record steps is reused by the next event."""
        run, self._spare = self._spare, None
        if run is None:
            run = gears_pipeline.Run(self.steps, errors, format_error)
            if not run.reusable:
                return run.feed((record,))
            run.feed_one(record)
        else:
            run.feed_one(record, errors)  # reset for this record first
        if run.done:
            self._spare = run
        else:  # the record waits: once its results are read the run may serve again
            run.recycle = lambda: self._recycle(run)
        return run

    def _recycle(self, run):
        if self._spare is None and not run.cancelled:
            self._spare = run

    def _plan_steps(self):
        """(type, name, arg, is_the_step_that_runs) per 1.2 step, in flow order."""
        out = []
        for kind, *args in self.steps:
            callbacks = iter(args)
            for step_type, name, takes_arg in _BEFORE.get(kind, ()):
                out.append((step_type, name, str(next(callbacks)) if takes_arg else "", False))
            for j, (step_type, name, takes_arg) in enumerate(_PLAN[kind]):
                arg = next(callbacks, "") if takes_arg else ""
                out.append((step_type, name, str(arg) if takes_arg else "", j == 0))
        return out

    def plan(self):
        """Step descriptions for RG.GETEXECUTION, last step first: [type, name, arg] ... (as
        1.2, the reader is not a step)."""
        return [field for step in reversed(self._plan_steps()) for field in step[:3]]

    def step_durations_ms(self, timings):
        """Per plan step its own time in ms, in plan order, then the reader's: our step's time
        goes to the 1.2 step that runs its callback (the others show 0)."""
        ours = iter(timings[1:])
        durations = [int(max(next(ours), 0.0) * 1000) if runs else 0 for *_, runs in self._plan_steps()]
        return list(reversed(durations)) + [int(max(timings[0], 0.0) * 1000)]
