"""Profiling of a session's entries (ProfileExecutions, RG.PYPROFILE), and the epilogue every
profiled entry runs: the session's event loop (what the entry made ready, see gears_async)."""
import gears_async
import gears_encode

# ProfileExecutions, as the host passes it with each entry (a flag of its code: see
# gears_abi.ENTRY_FLAGS); set by gears_runtime._enter before the entry runs.
on = False

_profiler = None  # cProfile.Profile of this session's callbacks while ProfileExecutions is on


def profiled(entry):
    """Marks a host entry that runs flows: gears_runtime._enter runs it under the session's
    profiler when ProfileExecutions is set (run_profiled), and the session's event loop after
    it (what the entry made ready: see gears_async)."""
    entry.runs_flows = True
    return entry


def run_profiled(entry, arg):
    """`entry(arg)` and the event loop after it, under the session's profiler."""
    global _profiler
    if _profiler is None:
        import cProfile
        _profiler = cProfile.Profile()
    profiler = _profiler
    profiler.enable()
    try:
        out = entry(arg)
        gears_async.after_entry()
        return out
    finally:
        profiler.disable()


def request(op, order="tottime"):
    """RG.PYPROFILE: the stats text (STATS) or a fresh start (RESET)."""
    global _profiler
    if op == "reset":
        _profiler = None
        return gears_encode.encode_results(["OK"], [])
    if _profiler is None:
        return gears_encode.encode_results([], ["session has no profile stats (is ProfileExecutions on?)"])
    import io
    import pstats
    out = io.StringIO()
    try:
        stats = pstats.Stats(_profiler, stream=out).sort_stats(order)
    except KeyError:
        return gears_encode.encode_results([], ["unknown sort order %s" % order])
    stats.print_stats()
    stats.print_callers()
    stats.print_callees()
    return gears_encode.encode_results([out.getvalue()], [])
