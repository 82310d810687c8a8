"""CommandReader registrations (trigger=): register, RG.TRIGGER / RG.TRIGGERONKEY,
RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.CLEARREGISTRATIONSSTATS."""
import ast
import re
import time

import pytest
import redis

from conftest import as_dict, pyexec, pyexec_err, wait_for

ID_RE = re.compile(r"^0{40}-\d+$")

COUNTER = ("count = 0\n"
           "def inc(x):\n"
           "    global count\n"
           "    count += 1\n"
           "    return count\n"
           "def read(x):\n"
           "    return count\n"
           "GB('CommandReader').map(inc).register(trigger='{p}inc')\n"
           "GB('CommandReader').map(read).register(trigger='{p}read')\n")


def test_two_registrations_share_one_globals_namespace(clean):
    r = clean
    assert pyexec(r, COUNTER.replace("{p}", "c_")) == "OK"
    for n in range(1, 6):
        assert r.execute_command("RG.TRIGGER", "c_inc") == [str(n)]
    assert r.execute_command("RG.TRIGGER", "c_read") == ["5"]


def test_trigger_record_and_triggeronkey(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader').map(lambda x: '|'.join(x)).register(trigger='echo')") == "OK"
    assert r.execute_command("RG.TRIGGER", "echo", "a", "b") == ["echo|a|b"]
    assert r.execute_command("RG.TRIGGERONKEY", "echo", "key1", "x") == ["echo|key1|x"]


def test_trigger_errors(clean):
    r = clean
    with pytest.raises(redis.ResponseError, match="subcommand not found"):
        r.execute_command("RG.TRIGGER", "nosuch")
    assert pyexec(r, "GB('CommandReader').map(lambda x: 1/0).register(trigger='boom')") == "OK"
    with pytest.raises(redis.ResponseError, match="ZeroDivisionError"):
        r.execute_command("RG.TRIGGER", "boom")
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("RG.TRIGGER", "boom")
    with pytest.raises(redis.ResponseError, match="blocking is not allowed"):
        pipe.execute()
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("RG.TRIGGER")


def test_dumpregistrations_shape_and_stats(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader', desc='my flow').map(lambda x: 1/0 if len(x) > 1 else 'ok')"
                     ".register(trigger='stats', mode='async_local')") == "OK"
    r.execute_command("RG.TRIGGER", "stats")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.TRIGGER", "stats", "fail")
    [entry] = r.execute_command("RG.DUMPREGISTRATIONS")
    assert len(entry) == 12
    e = as_dict(entry)
    assert ID_RE.match(e["id"]) and e["reader"] == "CommandReader" and e["desc"] == "my flow"
    assert e["ExecutionThreadPool"] == "DefaultPool"
    data = as_dict(e["RegistrationData"])
    assert data["mode"] == "async_local"
    assert (data["numTriggered"], data["numSuccess"], data["numFailures"], data["numAborted"]) == (2, 1, 1, 0)
    assert "ZeroDivisionError" in data["lastError"]
    assert data["args"] == ["trigger", "stats", "inorder", 0]
    assert "'refCount': 1" in e["PD"] and e["id"] in e["PD"]
    assert r.execute_command("RG.CLEARREGISTRATIONSSTATS") == "OK"
    data = as_dict(as_dict(r.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    assert (data["numTriggered"], data["numFailures"], data["lastError"]) == (0, 0, None)


def test_unregister_frees_the_session(clean):
    r = clean
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == 0, 5)
    assert pyexec(r, COUNTER.replace("{p}", "u_")) == "OK"
    ids = [entry[1] for entry in r.execute_command("RG.DUMPREGISTRATIONS")]
    assert len(ids) == 2 and r.info("rg")["rg_nregistrations"] == 2
    assert r.info("rg")["rg_nsessions"] == 1  # both registrations hold one session
    assert r.execute_command("RG.UNREGISTER", ids[0]) == "OK"
    assert r.info("rg")["rg_nsessions"] == 1
    assert r.execute_command("RG.TRIGGER", "u_read") == ["0"]
    assert r.execute_command("RG.UNREGISTER", ids[1], "abortpending") == "OK"
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == 0, 5)
    assert r.info("rg")["rg_guest_memory_bytes"] == 0
    with pytest.raises(redis.ResponseError, match="execution is not registered"):
        r.execute_command("RG.UNREGISTER", ids[0])


def test_failing_script_registers_nothing(clean):
    r = clean
    err = pyexec_err(r, "GB('CommandReader').register(trigger='never')\nraise ValueError('stop')")
    assert "ValueError" in err
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []
    with pytest.raises(redis.ResponseError, match="subcommand not found"):
        r.execute_command("RG.TRIGGER", "never")


@pytest.mark.parametrize("script, message", [
    ("GB('CommandReader').register()", "no trigger or hook argument was given"),
    ("GB('CommandReader').register(trigger='t', keyprefix='k')", "trigger argument can not be given with keyprefix or hook"),
    ("GB('CommandReader').register(trigger=1)", "trigger argument is not string"),
    ("GB('CommandReader').register(trigger='t', mode='bogus')", "unknown execution mode"),
    ("GB('CommandReader').register(trigger='t')\nGB('CommandReader').register(trigger='t')",
     "trigger already registered in this session"),
    ("GB('CommandReader').register(trigger='t', onRegistered=print)", "OnRegistered argument must be a function"),
])
def test_register_argument_errors(clean, script, message):
    assert message in pyexec_err(clean, script)
    assert clean.execute_command("RG.DUMPREGISTRATIONS") == []


def test_trigger_taken_by_another_session(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader').register(trigger='taken')") == "OK"
    assert "trigger already registered" in pyexec_err(r, "GB('CommandReader').register(trigger='taken')")
    assert len(r.execute_command("RG.DUMPREGISTRATIONS")) == 1


def test_onregistered_runs_and_shares_globals(clean):
    r = clean
    script = ("state = {}\n"
              "def ready():\n"
              "    state['ready'] = 'yes'\n"
              "GB('CommandReader').map(lambda x: state.get('ready', 'no')).register(trigger='ready', onRegistered=ready)\n")
    assert pyexec(r, script) == "OK"
    assert r.execute_command("RG.TRIGGER", "ready") == ["yes"]


# ---------------------------------------------------------------- KeysReader registrations (async)

KEYS_COUNTER = ("count = 0\n"
                "def seen(x):\n"
                "    global count\n"
                "    count += 1\n"
                "    execute('set', 'seen:' + x['key'], '%s|%s|%s' % (x['event'], x['type'], x['value']))\n"
                "GB().foreach(seen).register('user:*', eventTypes=['set'])\n"
                "GB('CommandReader').map(lambda x: count).register(trigger='kcount')\n")


def test_keys_registration_counts_events_in_a_shared_global(clean):
    r = clean
    assert pyexec(r, KEYS_COUNTER) == "OK"
    for i in range(20):
        r.set(f"user:{i}", f"v{i}")
    r.hset("user:h", "f", "1")  # hset: not a 'set' event
    r.set("other", "1")  # outside the prefix
    assert wait_for(lambda: r.execute_command("RG.TRIGGER", "kcount") == ["20"], 10)
    assert r.get("seen:user:7") == "set|string|v7"
    assert r.get("seen:user:h") is None and r.get("seen:other") is None
    entry = [e for e in r.execute_command("RG.DUMPREGISTRATIONS") if e[3] == "KeysReader"][0]
    data = as_dict(entry[7])
    assert data["args"] == ["regex", "user:*", "eventTypes", ["set"], "keyTypes", None, "hookCommands", None]
    assert wait_for(lambda: as_dict([e for e in r.execute_command("RG.DUMPREGISTRATIONS")
                                      if e[3] == "KeysReader"][0][7])["numSuccess"] == 20, 10)


def test_keys_registration_key_types_and_read_value(clean):
    r = clean
    script = ("GB().foreach(lambda x: execute('rpush', 'log', '%s:%s' % (x['key'], sorted(x.keys()))))"
              ".register('h:*', keyTypes=['hash'], readValue=False)\n")
    assert pyexec(r, script) == "OK"
    r.hset("h:1", "a", "1")
    r.set("h:2", "x")  # a string: filtered out by keyTypes
    assert wait_for(lambda: r.llen("log") >= 1, 10)
    time.sleep(0.3)
    assert r.lrange("log", 0, -1) == ["h:1:['event', 'key']"]


def test_unregistered_keys_registration_stops_firing(clean):
    r = clean
    assert pyexec(r, "GB().foreach(lambda x: execute('incr', 'fired')).register('u:*')") == "OK"
    r.set("u:1", "1")
    assert wait_for(lambda: r.get("fired") == "1", 10)
    [entry] = r.execute_command("RG.DUMPREGISTRATIONS")
    assert r.execute_command("RG.UNREGISTER", entry[1]) == "OK"
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == 0, 5)
    r.set("u:2", "1")
    time.sleep(0.3)
    assert r.get("fired") == "1"


@pytest.mark.parametrize("script, message", [
    ("GB().register(keyTypes=['nope'])", "unknown key type"),
    ("GB().register(eventTypes=1)", "given eventTypes is not iterable"),
    ("GB().register(prefix=1)", "regex argument must be a string"),
    ("GB().register(readValue='yes')", "readValue is not boolean"),
    ("GB().register(mode='sometimes')", "unknown execution mode"),
    ("GB().register(commands=1)", "given commands is not iterable"),
    ("GB().register(commands=['nosuchcmd'])", "Can not override an unexisting command"),
    ("GB('PythonReader').register()", "given reader does not exists or does not support register"),
])
def test_keys_register_argument_errors(clean, script, message):
    assert message in pyexec_err(clean, script)
    assert clean.execute_command("RG.DUMPREGISTRATIONS") == []


def test_self_triggering_registrations_are_bounded(clean):
    """Two registrations that write the keys they listen to would queue work without end; the
    backlog per registration is capped (MaxPendingEvents), the rest is dropped and counted."""
    r = clean
    r.execute_command("RG.CONFIGSET", "MaxPendingEvents", "20")
    try:
        script = ("import random\n"
                  "def spread(x):\n"
                  "    execute('set', 'lp:%d' % random.randrange(10**6), '1')\n"
                  "GB().foreach(spread).register('lp:*')\n"
                  "GB().foreach(spread).register('lp:*')\n")
        assert pyexec(r, script) == "OK"
        before = r.info("memory")["used_memory"]
        r.set("lp:start", "1")
        time.sleep(3)
        assert r.ping()
        assert r.info("memory")["used_memory"] - before < 100 * 1024 * 1024
        stats = [as_dict(e[7]) for e in r.execute_command("RG.DUMPREGISTRATIONS")]
        assert sum(s["numAborted"] for s in stats) > 0, stats
        assert "MaxPendingEvents" in (stats[0]["lastError"] or stats[1]["lastError"] or "")
    finally:
        for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
            r.execute_command("RG.UNREGISTER", entry[1])
        r.execute_command("RG.CONFIGSET", "MaxPendingEvents", "1000")
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == 0, 15)


# ---------------------------------------------------------------- reply texts of RedisGears 1.2

def resp2(r):
    """A RESP2 client of the same server (redis-py speaks RESP3 by default)."""
    kw = r.connection_pool.connection_kwargs
    return redis.Redis(host=kw["host"], port=kw["port"], decode_responses=True, protocol=2)


def test_dumpregistrations_as_redisgears(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader').register(trigger='t1')\n"
                     "GB('CommandReader').register(hook='set', mode='sync')", "ID", "s1") == "OK"
    t1, hook = [as_dict(e) for e in r.execute_command("RG.DUMPREGISTRATIONS")]
    # RedisModule_ReplyWithDouble(avgDurationMS(crtCtx)): a RESP3 double, and in RESP2 the bulk
    # "%.17g" of it, so 0 is '0'.
    assert as_dict(t1["RegistrationData"])["avgRunDurationMS"] == 0.0
    t1_resp2 = as_dict(resp2(r).execute_command("RG.DUMPREGISTRATIONS")[0])
    assert as_dict(t1_resp2["RegistrationData"])["avgRunDurationMS"] == "0"
    # CommandReader_DumpRegistrationData: always trigger/inorder; a hook's name is its command.
    assert as_dict(hook["RegistrationData"])["args"] == ["trigger", "set", "inorder", 0]
    # PythonSessionCtx_ToString: "'sessionDescription':'%s'" (with "null"), ArrToStr(..., ',').
    pd = t1["PD"]
    assert pd.startswith("{'sessionName':'s1', 'sessionDescription':'null', 'refCount': "), pd
    # 1.2 writes `'linkedTo': primary, 'dead': false`, which no Python can read back; gears-cli
    # eval()s PD and redgrease literal_eval()s it, so ours is a literal (issue #18).
    assert pd.endswith(f", 'linkedTo': 'primary', 'dead': False, 'isInstallationNeeded':0, "
                       f"'registrationsList':['{t1['id']}','{hook['id']}'], 'depsList':[]}}"), pd
    parsed = ast.literal_eval(pd)
    assert list(parsed) == ["sessionName", "sessionDescription", "refCount", "linkedTo", "dead",
                            "isInstallationNeeded", "registrationsList", "depsList"]


def test_avg_run_duration_is_a_double_over_ended_runs(clean):
    r = clean
    assert pyexec(r, "import time\nGB('CommandReader').map(lambda x: time.sleep(0.02)).register(trigger='slow')") == "OK"
    r.execute_command("RG.TRIGGER", "slow")
    r.execute_command("RG.TRIGGER", "slow")
    data = as_dict(as_dict(resp2(r).execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    ended = data["numSuccess"] + data["numFailures"] + data["numAborted"]
    expected = data["totalRunDurationMS"] / ended
    assert data["avgRunDurationMS"] == "%.17g" % expected


def test_unregister_ignores_a_third_argument(clean):
    r = clean
    assert pyexec(r, "GB('CommandReader').register(trigger='u3')") == "OK"
    [entry] = r.execute_command("RG.DUMPREGISTRATIONS")
    # Command_UnregisterExecution: argc 2..3, abortPending only when the third is ABORTPENDING.
    assert r.execute_command("RG.UNREGISTER", entry[1], "foo") == "OK"
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("RG.UNREGISTER", entry[1], "a", "b")


def test_pause_texts(clean):
    r = clean
    assert pyexec(r, "GB().register(prefix='p:*')") == "OK"
    [entry] = r.execute_command("RG.DUMPREGISTRATIONS")

    def err(*args):
        with pytest.raises(redis.ResponseError) as e:
            r.execute_command(*args)
        return str(e.value)

    # Command_PauseRegistrationsMap
    assert err("RG.PAUSEREGISTRATIONS", entry[1]) == "Reader KeysReader does not support pause"
    assert err("RG.UNPAUSEREGISTRATIONS", entry[1]) == "Reader KeysReader does not support unpause"
    assert err("RG.PAUSEREGISTRATIONS", "nosuch") == "Execution nosuch does not exists on shard " + "0" * 40
    assert err("RG.UNPAUSEREGISTRATIONS", "nosuch") == "Execution nosuch does not exists on shard " + "0" * 40
    assert err("RG.PAUSEREGISTRATIONS", "ABORTPENDING") == "no registration to pause"
    assert err("RG.PAUSEREGISTRATIONS", "ABORTPENDING", entry[1]) == "Reader KeysReader does not support pause"


def test_overlapping_prefixes_fire_in_registration_order_and_stop_when_unregistered(clean):
    r = clean
    ids = {}
    for name, prefix in (("A", "ix:*"), ("B", "i*"), ("C", "ix:1"), ("D", "iy:*")):
        script = ("GB().foreach(lambda r: execute('RPUSH', 'order', '%s'))"
                  ".register(prefix='%s', eventTypes=['set'], mode='sync')" % (name, prefix))
        assert pyexec(r, script) == "OK"
    for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
        e = dict(zip(entry[::2], entry[1::2]))
        data = dict(zip(e["RegistrationData"][::2], e["RegistrationData"][1::2]))
        ids[dict(zip(data["args"][::2], data["args"][1::2]))["regex"]] = e["id"]

    def fired(key):
        r.delete("order")
        r.set(key, "v")
        return r.lrange("order", 0, -1)

    assert fired("ix:1") == ["A", "B", "C"]
    assert fired("ix:12") == ["A", "B"]
    assert fired("iy:1") == ["B", "D"]
    assert fired("other") == []
    assert r.execute_command("RG.UNREGISTER", ids["ix:*"]) == "OK"
    assert fired("ix:1") == ["B", "C"]
    assert r.execute_command("RG.UNREGISTER", ids["ix:1"]) == "OK"
    assert fired("ix:1") == ["B"]
