"""What a RedisGears 1.2 script finds in its globals: `execute`, `log`, `atomic`, `registerTE`,
the `redisgears` module, ... and the base globals every script starts from (`BASE`).

Imported once at build time (inside the Wizer snapshot), by gears_runtime.
"""
import asyncio
import builtins
import sys
import traceback
import types
from functools import partial

import _gears_host
import gears_abi
import gears_async
import gears_builder
import gears_cluster
import gears_encode
import gears_host

error = gears_host.error  # gears.error: a Redis error reply


class forcestopped(Exception):
    """gears.forcestopped: the execution was aborted."""


flat_error = gears_host.flat_error
forcestopped.__module__ = "gears"

_LOG_LEVELS = {"debug": 0, "verbose": 1, "notice": 2, "warning": 3}
time_events = {}  # time event id (from the host) -> callback (registerTE)


# execute(command, *args): runs a Redis command and returns its reply; an error reply raises
# gears.error (in C: glue.c's execute, with RedisGears 1.2's words for refused commands).
execute = partial(_gears_host.execute, gears_abi.HOST_REQUESTS["call"])


def log(*args, **kwargs):
    """log(msg, level='notice'): writes `GEARS: <msg>` to the Redis log. As in 1.2, two
    positional arguments are the older (level, msg)."""
    if not args:
        raise error("log function must get a log message as input")
    if len(args) >= 2:
        level, msg = args[0], args[1]
    else:
        msg, level = args[0], kwargs.get("level", "notice")
    if not isinstance(msg, str):
        raise error("Log message must be a string")
    if not isinstance(level, str):
        raise error("Log level must be a sting (debug/verbose/notice/warning)")
    if level not in _LOG_LEVELS:
        raise error("Log level should be one of the following : debug,verbose,notice,warning")
    gears_host.request("log", str(_LOG_LEVELS[level]), msg)


def configGet(key):
    """A RedisGears configuration value (or extra config) as str, or None."""
    if not isinstance(key, str):
        raise error("config key must be a string")
    return gears_host.request("config_get", key)


def gearsConfigGet(key, default=None):
    value = configGet(key)
    return default if value is None else value


class atomic:
    """`with atomic():` holds the Redis lock for the block, so its commands run together
    (re-entrant; released at the latest when the call into Python ends)."""

    def __enter__(self):
        gears_host.request("atomic", "1")
        loop = gears_async._loop
        gears_async.atomic_tasks.append(None if loop is None else asyncio.current_task(loop))
        return self

    def __exit__(self, *exc_info):
        gears_async.atomic_tasks.pop()
        gears_host.request("atomic", "0")
        return False


def hashtag():
    """A hash tag mapping to this shard's first slot; standalone: slot 0's ('06S')."""
    return gears_cluster.hashtag()


def flatError(msg):
    """Raises gears.flat_error(msg) (1.2's C flatError raises; `raise flat_error(m)` works too)."""
    raise flat_error(msg)


def registerTE(seconds, callback, keyName=None):
    """A time event: `callback()` every `seconds`, in this session, until it raises. With
    `keyName` it lives in that key (deleting the key stops it): False if the key exists."""
    if not isinstance(callback, types.FunctionType):
        raise error("callback must be a function")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise error("time argument must be a long")
    if not 0 < seconds <= gears_abi.MAX_INTERVAL_SECS:
        raise error("time argument must be a positive long of at most %d seconds" % gears_abi.MAX_INTERVAL_SECS)
    if keyName is not None and not isinstance(keyName, str):
        raise error("keyName argument must be a string")
    event_id = gears_host.request("time_event", str(seconds), keyName or "", "0" if keyName is None else "1")
    if event_id == 0:
        return False
    time_events[event_id] = callback
    return True


def get_command():
    """The arguments of the command being hooked (hook=) or run (commands=)."""
    return gears_host.request("get_command")


def call_next(*args):
    """Inside a hook=: runs the hooked command itself with `args` (the name is added)."""
    parts = [bytes(arg) if isinstance(arg, (bytes, bytearray)) else str(arg) for arg in args]
    return gears_host.request("call_next", *parts)


def override_reply(reply):
    """With commands=: the reply the client gets instead of the command's own (once)."""
    return gears_host.request("override_reply", gears_encode.encode_record(reply))


def _deprecated(name, func):
    def wrapper(*args, **kwargs):
        log("%s is deprecated, use %s instead" % (name, func.__name__), level="warning")
        return func(*args, **kwargs)

    wrapper.__name__ = name
    return wrapper


def _make_redisgears_module():
    mod = types.ModuleType("redisgears", "RedisGears host functions")
    mod.executeCommand = execute
    mod.log = log
    mod.config_get = configGet
    mod.flatError = flatError
    mod.atomicCtx = atomic
    mod.getMyHashTag = hashtag
    mod.registerTimeEvent = registerTE
    mod.GearsError = error
    mod.GearsForceStopped = forcestopped
    mod.GearsFlatError = flat_error
    mod.gearsFutureCtx = gears_async.gearsFuture
    mod.isAsyncAllow = gears_async.async_allowed
    return mod


redisgears = _make_redisgears_module()
sys.modules["redisgears"] = redisgears


def _base_globals():
    # What 1.2's saved globals hold besides its API: the modules its GearsBuilder.py and
    # cloudpickle import, which scripts use without importing them (`__name__` is "not_main").
    import copy
    import functools
    import importlib
    import io
    import itertools
    import operator
    import pickle
    import struct
    import weakref
    g = {name: module for name, module in (
        ("sys", sys), ("io", io), ("types", types), ("pickle", pickle), ("struct", struct),
        ("itertools", itertools), ("operator", operator), ("traceback", traceback), ("weakref", weakref),
        ("importlib", importlib), ("copy", copy))}
    g.update(partial=functools.partial, Future=asyncio.Future)
    g.update({
        "__builtins__": builtins,
        "__name__": "not_main",
        "GearsBuilder": gears_builder.GearsBuilder,
        "GB": gears_builder.GearsBuilder,
        "execute": execute,
        "log": log,
        "configGet": configGet,
        "gearsConfigGet": gearsConfigGet,
        "flat_error": flatError,
        "atomic": atomic,
        "hashtag": hashtag,
        "registerTE": registerTE,
        "get_command": get_command,
        "call_next": call_next,
        "override_reply": override_reply,
        "redisgears": redisgears,
        "rg": redisgears,
        "Log": _deprecated("Log", log),
        "ConfigGet": _deprecated("ConfigGet", configGet),
        "GearsConfigGet": _deprecated("GearsConfigGet", gearsConfigGet),
    })
    g.update(gearsFuture=gears_async.gearsFuture, isAsyncAllow=gears_async.async_allowed,
             createFuture=gears_async.createFuture, setFutureResults=gears_async.setFutureResults,
             setFutureException=gears_async.setFutureException, runCoroutine=gears_async.runCoroutine,
             GearsFuture=gears_async.GearsFuture, asyncio=asyncio)
    return g


BASE = _base_globals()
