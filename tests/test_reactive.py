"""Registrations that react inside Redis: sync KeysReader registrations on the main thread,
hooks (hook=), commands= with override_reply, StreamReader registrations, time events."""
import time

import pytest
import redis

from conftest import as_dict, pyexec, pyexec_err, wait_for


def raw(r, *args):
    """A command's reply without redis-py's per-command parsing (a hook may change SET's)."""
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        r.connection_pool.release(conn)


def registration(r, rid):
    for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
        e = as_dict(entry)
        if e["id"] == rid:
            e["RegistrationData"] = as_dict(e["RegistrationData"])
            e["RegistrationData"]["args"] = as_dict(e["RegistrationData"]["args"])
            return e
    return None


# ---- sync KeysReader -------------------------------------------------------------------------

SYNC_COUNTER = """
count = 0
def on_set(r):
    global count
    count += 1
GB().foreach(on_set).register(prefix='cnt:*', eventTypes=['set'], mode='sync')
GB('CommandReader').map(lambda x: count).register(trigger='sync_count', convertToStr=False)
"""


def test_sync_registration_counts_every_set_in_a_shared_global(clean):
    r = clean
    assert pyexec(r, SYNC_COUNTER) == "OK"
    for n in range(1, 51):
        r.set("cnt:%d" % n, n)
        # sync: the count is already updated when SET returns
        assert r.execute_command("RG.TRIGGER", "sync_count") == [n]
    r.set("other", 1)
    r.hset("cnt:h", "f", "v")  # not a set event
    assert r.execute_command("RG.TRIGGER", "sync_count") == [50]


def test_sync_registration_writes_within_the_command(clean):
    r = clean
    script = ("GB().foreach(lambda x: execute('incr', 'seen:' + x['key']))"
              ".register(prefix='w:*', eventTypes=['set'], mode='sync')")
    assert pyexec(r, script) == "OK"
    pipe = r.pipeline(transaction=True)
    pipe.set("w:1", "a")
    pipe.get("seen:w:1")
    assert pipe.execute() == [True, "1"]  # written inside SET, visible to the next command in MULTI
    r.set("w:1", "b")
    assert r.get("seen:w:1") == "2"


def test_sync_registration_runaway_loop_is_stopped_quickly(clean):
    r = clean
    r.execute_command("RG.CONFIGSET", "SandboxMainThreadTimeLimitMS", "200")
    try:
        script = ("def spin(x):\n    while True: pass\n"
                  "GB().foreach(spin).register(prefix='spin:*', mode='sync')")
        rid_script = pyexec(r, script)
        assert rid_script == "OK"
        started = time.monotonic()
        r.set("spin:1", "x")  # the SET itself succeeds; the registration is stopped
        assert time.monotonic() - started < 2
        assert r.ping()
        [entry] = [as_dict(e) for e in r.execute_command("RG.DUMPREGISTRATIONS")]
        data = as_dict(entry["RegistrationData"])
        assert data["numFailures"] == 1
        assert "SandboxMainThreadTimeLimitMS" in data["lastError"]
    finally:
        r.execute_command("RG.CONFIGSET", "SandboxMainThreadTimeLimitMS", "500")


# ---- hooks -------------------------------------------------------------------------------------

def test_hook_rewrites_set_reply(clean):
    r = clean
    script = ("def h(x):\n"
              "    res = call_next(x[1], x[2].upper())\n"
              "    return 'hooked:' + str(res)\n"
              "GB('CommandReader').map(h).register(hook='set', keyprefix='hk:')")
    assert pyexec(r, script) == "OK"
    assert raw(r, "SET", "hk:1", "abc") == "hooked:OK"
    assert r.get("hk:1") == "ABC"
    assert raw(r, "SET", "plain", "abc") == "OK"  # keyprefix not matched
    assert r.get("plain") == "abc"


def test_hook_get_command_and_errors(clean):
    r = clean
    script = ("GB('CommandReader').map(lambda x: '|'.join(get_command())).register(hook='hset', mode='sync')\n"
              "GB('CommandReader').flatmap(lambda x: [1, 2]).register(hook='lpush')\n"
              "GB('CommandReader').map(lambda x: 1/0).register(hook='rpush')")
    assert pyexec(r, script) == "OK"
    assert raw(r, "HSET", "h", "f", "v") == "HSET|h|f|v"
    assert r.exists("h") == 0  # the hook did not call_next
    with pytest.raises(redis.ResponseError, match="exactly one result"):
        raw(r, "LPUSH", "l", "a")
    with pytest.raises(redis.ResponseError, match="ZeroDivisionError"):
        raw(r, "RPUSH", "l", "a")


def test_hook_refused_on_unhookable_commands(clean):
    r = clean
    for cmd in ("multi", "eval", "rg.trigger", "nosuchcommand"):
        err = pyexec_err(r, "GB('CommandReader').register(hook='%s')" % cmd)
        assert "Can not override a" in err  # 1.2: "...an unexisting command" / "...not allowed inside a script"
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []


def test_call_next_outside_a_hook(clean):
    r = clean
    err = pyexec_err(r, "call_next('x')")
    assert "Can not get CommandHook ctx" in err
    err = pyexec_err(r, "override_reply('x')")
    assert "Can not get command ctx" in err


def test_unregistered_hook_stops_wrapping(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader').map(lambda x: 'nope').register(hook='set')") == "OK"
    assert raw(r, "SET", "a", "1") == "nope"
    [entry] = r.execute_command("RG.DUMPREGISTRATIONS")
    r.execute_command("RG.UNREGISTER", entry[1])
    assert raw(r, "SET", "a", "1") == "OK"


# ---- commands= -----------------------------------------------------------------------------

def test_commands_registration_overrides_the_reply(clean):
    r = clean
    script = ("def f(x):\n"
              "    execute('hset', x['key'], 'seen', '1')\n"
              "    override_reply('overridden ' + x['key'])\n"
              "GB().foreach(f).register(prefix='c:*', commands=['hset'])")
    assert pyexec(r, script) == "OK"
    assert raw(r, "HSET", "c:1", "a", "b") == "overridden c:1"
    assert r.hgetall("c:1") == {"a": "b", "seen": "1"}  # done before the client got its reply
    # other commands on the same keys do not fire it
    r.execute_command("HDEL", "c:1", "seen")
    assert r.hgetall("c:1") == {"a": "b"}
    # other prefixes: the plain reply
    assert raw(r, "HSET", "d:1", "a", "b") == 1


# ---- streams -------------------------------------------------------------------------------

STREAM_SCRIPT = """
def store(r):
    execute('rpush', 'seen:' + r['key'], r['id'])
GB('StreamReader').foreach(store).register(prefix='s:*', batch=3, duration={duration}, trimStream={trim})
"""


def test_stream_registration_batches_and_duration(clean):
    r = clean
    assert pyexec(r, STREAM_SCRIPT.format(duration=500, trim=False)) == "OK"
    ids = [r.xadd("s:1", {"n": i}) for i in range(3)]
    assert wait_for(lambda: r.llen("seen:s:1") == 3)
    assert r.lrange("seen:s:1", 0, -1) == ids
    extra = r.xadd("s:1", {"n": 3})  # a partial batch: flushed after 500 ms
    time.sleep(0.2)
    assert r.llen("seen:s:1") == 3
    assert wait_for(lambda: r.llen("seen:s:1") == 4, timeout=3)
    assert r.lindex("seen:s:1", 3) == extra
    assert r.xlen("s:1") == 4  # trimStream=False keeps them
    [entry] = r.execute_command("RG.DUMPREGISTRATIONS")
    e = as_dict(entry)
    data = as_dict(e["RegistrationData"])
    assert e["reader"] == "StreamReader"
    assert as_dict(data["args"]) == {"batchSize": 3, "durationMS": 500, "stream": "s:*", "trimStream": 0,
                                     "onFailedPolicy": "continue", "retryInterval": 1}
    assert data["status"] == "OK"
    # The stream's first XADD makes its state and a run that re-reads unacknowledged entries
    # (none), then the two batches (streams_reader.c: SingleStreamReaderCtx_Create always
    # calls StreamReader_RunOnEvent(ssrctx, 0, true); every run counts).
    assert data["numSuccess"] == 3 and data["numTriggered"] == 3
    assert list(data)[:11] == ["mode", "numTriggered", "numSuccess", "numFailures", "numAborted",
                               "lastRunDurationMS", "totalRunDurationMS", "avgRunDurationMS",
                               "lastEstimatedLagMS", "avgEstimatedLagMS", "lastError"]


def test_stream_trim_and_pause(clean):
    r = clean
    assert pyexec(r, STREAM_SCRIPT.format(duration=0, trim=True).replace("batch=3", "batch=1")) == "OK"
    [entry] = r.execute_command("RG.DUMPREGISTRATIONS")
    rid = entry[1]
    r.xadd("s:t", {"a": 1})
    assert wait_for(lambda: r.llen("seen:s:t") == 1)
    assert wait_for(lambda: r.xlen("s:t") == 0)  # processed entries trimmed
    assert r.execute_command("RG.PAUSEREGISTRATIONS", rid) == "OK"
    assert registration(r, rid)["RegistrationData"]["status"] == "PAUSED"
    r.xadd("s:t", {"a": 2})
    r.xadd("s:t", {"a": 3})
    time.sleep(0.3)
    assert r.llen("seen:s:t") == 1
    assert r.execute_command("RG.UNPAUSEREGISTRATIONS", rid) == "OK"
    assert wait_for(lambda: r.llen("seen:s:t") == 3)
    with pytest.raises(redis.ResponseError, match="Execution nosuch does not exists on shard 0{40}"):
        r.execute_command("RG.PAUSEREGISTRATIONS", "nosuch")


def test_stream_retry_policy_retries_the_failed_batch(clean):
    r = clean
    script = """
attempts = 0
def flaky(rec):
    global attempts
    attempts += 1
    execute('set', 'attempts', attempts)
    if attempts < 3:
        raise Exception('not yet')
    execute('rpush', 'done', rec['id'])
GB('StreamReader').foreach(flaky).register(prefix='rs', onFailedPolicy='retry', onFailedRetryInterval=1)
"""
    assert pyexec(r, script) == "OK"
    eid = r.xadd("rs", {"x": 1})
    assert wait_for(lambda: r.get("attempts") == "1")
    status = lambda: as_dict(as_dict(r.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])["status"]
    assert wait_for(lambda: status() == "WAITING_FOR_RETRY_ON_FAILURE")
    assert wait_for(lambda: r.lrange("done", 0, -1) == [eid], timeout=6)
    assert r.get("attempts") == "3"
    data = as_dict(as_dict(r.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    # Successes: the first XADD's (empty) re-read of unacknowledged entries, and the retried
    # batch, which each retry re-reads as an unacknowledged entry (streams_reader.c).
    assert data["status"] == "OK" and data["numFailures"] == 2 and data["numSuccess"] == 2
    assert r.xinfo_groups("rs")[0]["name"] == "__gears_consumer_group__"
    assert r.xinfo_groups("rs")[0]["pending"] == 0
    assert "not yet" in data["lastError"]


def test_stream_abort_policy_stops_the_registration(clean):
    r = clean
    script = ("GB('StreamReader').foreach(lambda r: 1/0).register(prefix='ab', onFailedPolicy='abort')")
    assert pyexec(r, script) == "OK"
    r.xadd("ab", {"x": 1})
    assert wait_for(lambda: as_dict(as_dict(r.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
                    ["status"] == "ABORTED")


def test_stream_registration_argument_errors(clean):
    r = clean
    assert "batch" in pyexec_err(r, "GB('StreamReader').register(batch='x')")
    assert "onFailedPolicy" in pyexec_err(r, "GB('StreamReader').register(onFailedPolicy='sometimes')")
    assert "ExecutionMode sync can only be combined with OnFailedPolicy Continue" in \
        pyexec_err(r, "GB('StreamReader').register(mode='sync', onFailedPolicy='abort')")
    assert "pyTrimmStream argument must be a boolean" in pyexec_err(r, "GB('StreamReader').register(trimStream=1)")
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []


# ---- time events ---------------------------------------------------------------------------

def test_time_event_ticks_and_stops_when_its_key_is_deleted(clean):
    r = clean
    script = ("def tick():\n    execute('incr', 'ticks')\n"
              "assert registerTE(1, tick, 'te:key') is True\n"
              "assert registerTE(1, tick, 'te:key') is False\n")
    assert pyexec(r, script) == "OK"
    assert r.type("te:key") == "rg_timeev"
    assert wait_for(lambda: int(r.get("ticks") or 0) >= 2, timeout=4)
    r.delete("te:key")
    stopped_at = int(r.get("ticks"))
    time.sleep(2.2)
    assert int(r.get("ticks")) <= stopped_at + 1  # at most one tick already under way
    assert wait_for(lambda: r.info("rg")["rg_ntimeevents"] == 0)


def test_time_event_that_raises_stops(clean):
    r = clean
    script = ("n = 0\n"
              "def tick():\n"
              "    global n\n"
              "    n += 1\n"
              "    execute('set', 'te:n', n)\n"
              "    if n == 2:\n"
              "        raise Exception('enough')\n"
              "redisgears.registerTimeEvent(1, tick)\n")
    assert pyexec(r, script) == "OK"
    assert wait_for(lambda: r.get("te:n") == "2", timeout=4)
    time.sleep(1.5)
    assert r.get("te:n") == "2"
    assert r.info("rg")["rg_ntimeevents"] == 0
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == 0)  # its session was freed


def test_time_event_argument_errors(clean):
    r = clean
    assert "callback must be a function" in pyexec_err(r, "registerTE(1, print)")
    assert "time argument must be a long" in pyexec_err(r, "registerTE('1', lambda: None)")


def test_info_lists_registrations(clean):
    r = clean
    assert pyexec(r, "GB(desc='mine').register(prefix='inf:*')") == "OK"
    info = raw(r, "INFO", "rg")
    assert "# rg_regisrations" in info
    assert "desc=mine|reader=KeysReader|mode=async" in info


# ---- more of the registration surface ------------------------------------------------------

def test_keymiss_events_fire(clean):
    r = clean
    script = ("GB().foreach(lambda x: execute('rpush', 'misses', x['key'] + ':' + x['event']))"
              ".register(prefix='km:*', eventTypes=['keymiss'], readValue=False, mode='sync')")
    assert pyexec(r, script) == "OK"
    assert r.get("km:absent") is None
    assert r.lrange("misses", 0, -1) == ["km:absent:keymiss"]


def test_sync_trigger_runs_inline_even_inside_multi(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader').map(lambda x: execute('incr', 'st')).register("
                     "trigger='st', mode='sync', convertToStr=False)") == "OK"
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("RG.TRIGGER", "st")
    pipe.execute_command("RG.TRIGGER", "st")
    assert pipe.execute() == [[1], [2]]


def test_registered_executions_are_listed_and_capped(clean):
    r = clean
    for e in r.execute_command("RG.DUMPEXECUTIONS"):  # earlier tests' registrations' runs
        r.execute_command("RG.DROPEXECUTION", e[1])
    r.execute_command("RG.CONFIGSET", "MaxExecutionsPerRegistration", "3")
    try:
        assert pyexec(r, "GB().foreach(lambda x: 1/0 if x['key'] == 'rx:bad' else None)"
                         ".register(prefix='rx:*', mode='sync')") == "OK"
        for i in range(5):
            r.set("rx:%d" % i, i)
        r.set("rx:bad", 1)
        listed = [dict(zip(e[::2], e[1::2])) for e in r.execute_command("RG.DUMPEXECUTIONS")]
        registered = [e for e in listed if e["registered"] == 1]
        assert len(registered) == 3 and all(e["status"] == "done" for e in registered)
        last = registered[-1]["executionId"]
        results, errors = r.execute_command("RG.GETRESULTS", last)
        assert "ZeroDivisionError" in errors[0]
    finally:
        r.execute_command("RG.CONFIGSET", "MaxExecutionsPerRegistration", "100")
        for e in r.execute_command("RG.DUMPEXECUTIONS"):
            r.execute_command("RG.DROPEXECUTION", e[1])


def test_dumpregistrations_shape_of_hooks_and_commands(clean):
    r = clean
    script = ("GB('CommandReader').map(lambda x: call_next(*x[1:])).register(hook='incr', keyprefix='n:')\n"
              "GB(desc='w').foreach(lambda x: None).register(prefix='c:*', commands=['hset', 'HDEL'], mode='sync')")
    assert pyexec(r, script) == "OK"
    hook, keys = [as_dict(e) for e in r.execute_command("RG.DUMPREGISTRATIONS")]
    # CommandReader_DumpRegistrationData: a hook's args are trigger=<command>, inorder.
    assert as_dict(hook["RegistrationData"])["args"] == ["trigger", "incr", "inorder", 0]
    assert as_dict(as_dict(keys["RegistrationData"])["args"]) == {
        "regex": "c:*", "eventTypes": None, "keyTypes": None, "hookCommands": ["hset", "hdel"]}
    assert raw(r, "INCR", "n:1") == "1"  # the flow's default map(str)
    assert r.get("n:1") == "1"
    assert "'refCount': 2" in hook["PD"]


def test_hook_in_multi_and_lua_runs_inline(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader').map(lambda x: 'h:' + str(call_next(*x[1:])))"
                     ".register(hook='append')") == "OK"
    pipe = r.pipeline(transaction=True)
    pipe.append("ap", "x")
    pipe.append("ap", "y")
    assert pipe.execute() == ["h:1", "h:2"]
    assert r.eval("return redis.call('append', 'ap', 'z')", 0) == "h:3"
    assert r.get("ap") == "xyz"


def test_time_event_with_a_runaway_callback_is_stopped(clean):
    r = clean
    script = ("def tick():\n"
              "    execute('incr', 'rt')\n"
              "    while True: pass\n"
              "registerTE(1, tick)\n")
    r.execute_command("RG.CONFIGSET", "SandboxTimeLimitMS", "300")
    try:
        assert pyexec(r, script) == "OK"
        assert wait_for(lambda: r.get("rt") == "1", timeout=4)
        assert wait_for(lambda: r.info("rg")["rg_ntimeevents"] == 0, timeout=3)
        assert r.ping()
    finally:
        r.execute_command("RG.CONFIGSET", "SandboxTimeLimitMS", "5000")


def test_hook_with_a_runaway_loop_answers_an_error(clean):
    r = clean
    r.execute_command("RG.CONFIGSET", "SandboxMainThreadTimeLimitMS", "200")
    try:
        assert pyexec(r, "def spin(x):\n    while True: pass\n"
                         "GB('CommandReader').map(spin).register(hook='setnx', mode='sync')") == "OK"
        with pytest.raises(redis.ResponseError, match="time limit"):
            raw(r, "SETNX", "k", "v")
        assert r.ping()
    finally:
        r.execute_command("RG.CONFIGSET", "SandboxMainThreadTimeLimitMS", "500")
