"""RG.CONFIGGET / RG.CONFIGSET, module arguments, and where RG.PYEXECUTE is refused."""
import threading
import time

import pytest
import redis

from conftest import pyexec, pyexec_err

GEARS_DEFAULTS = {
    "MaxExecutions": 1000,
    "MaxExecutionsPerRegistration": 100,
    "ProfileExecutions": 0,
    "PythonAttemptTraceback": 1,
    "ExecutionThreads": 3,
    "ExecutionMaxIdleTime": 5000,
    "PythonInstallReqMaxIdleTime": 30000,
    "SendMsgRetries": 3,
}
SANDBOX_DEFAULTS = {"SandboxTimeLimitMS": 5000, "SandboxMemoryMB": 256, "MaxSessions": 1024}
EXTRA_SAVED = "OK - value was saved in extra config dictionary"
REFUSED = "Can not run gears inside a multi exec, lua, or when blocking is not allowed"


def configget(r, *keys):
    return r.execute_command("RG.CONFIGGET", *keys)


def configset(r, *pairs):
    return r.execute_command("RG.CONFIGSET", *pairs)


def is_error(x):
    return isinstance(x, redis.exceptions.ResponseError)


# ---------------------------------------------------------------- RG.CONFIGGET / RG.CONFIGSET

@pytest.mark.parametrize("key,value", sorted({**GEARS_DEFAULTS, **SANDBOX_DEFAULTS}.items()))
def test_configget_default(server, key, value):
    assert configget(server.client(), key) == [value]


def test_configget_several_keys_with_unknown_one(server):
    reply = configget(server.client(), "MaxExecutions", "NoSuchConfigKey", "ExecutionThreads")
    assert len(reply) == 3
    assert reply[0] == 1000
    assert is_error(reply[1])
    # config.c config_error: `char fmt1[256] = "(error) "; strncat(fmt1, fmt, ...)`
    assert str(reply[1]) == "(error) Unsupported config parameter: NoSuchConfigKey"
    assert reply[2] == 3


def test_configget_without_keys_and_plugin(server):
    r = server.client()
    # GearsConfig_Get has no arity check: no keys, no elements.
    assert configget(r) == []
    assert configget(r, "Plugin") == [[]]
    # Core keys are matched with strcmp by CONFIGGET.
    assert str(configget(r, "maxexecutions")[0]) == "(error) Unsupported config parameter: maxexecutions"


def test_configget_plugin_lists_module_args(make_server):
    r = make_server("Plugin", "/a.so", "Plugin", "/b.so").client()
    assert configget(r, "Plugin") == [["/a.so", "/b.so"]]
    assert str(configset(r, "Plugin", "/c.so")[0]) == "(error) Config value Plugin not modifiable at runtime"


def test_configset_runtime_settable(fresh_server):
    r = fresh_server.client()
    assert configset(r, "MaxExecutions", "10") == ["OK"]
    assert configget(r, "MaxExecutions") == [10]
    assert configset(r, "SandboxTimeLimitMS", "2000") == ["OK"]
    assert configget(r, "SandboxTimeLimitMS") == [2000]
    assert configset(r, "SandboxMemoryMB", "128") == ["OK"]
    assert configget(r, "SandboxMemoryMB") == [128]


def test_configset_name_is_case_insensitive(fresh_server):
    r = fresh_server.client()
    assert configset(r, "maxexecutions", "7") == ["OK"]
    assert configget(r, "MaxExecutions") == [7]


def test_configset_not_runtime_settable(fresh_server):
    r = fresh_server.client()
    reply = configset(r, "executionthreads", "5")
    assert len(reply) == 1 and is_error(reply[0])
    # the key as it was typed
    assert str(reply[0]) == "(error) Config value executionthreads not modifiable at runtime"
    assert configget(r, "ExecutionThreads") == [3]
    reply = configset(r, "MaxSessions", "5")
    assert len(reply) == 1 and is_error(reply[0])
    assert configget(r, "MaxSessions") == [1024]


def test_configset_several_pairs(fresh_server):
    r = fresh_server.client()
    reply = configset(r, "MaxExecutions", "20", "ExecutionThreads", "5", "MyPairKey", "x")
    assert len(reply) == 3
    assert reply[0] == "OK"
    assert is_error(reply[1])
    assert reply[2] == EXTRA_SAVED
    assert configget(r, "MaxExecutions", "ExecutionThreads", "MyPairKey") == [20, 3, "x"]


def test_configset_texts_of_redisgears(fresh_server):
    r = fresh_server.client()
    assert configset(r) == []
    reply = configset(r, "MaxExecutions", "many", "ExecutionMaxIdleTime", "0", "SendMsgRetries", "-1")
    assert [str(x) for x in reply] == ["(error) Failed setting config value MaxExecutions",
                                       "(error) Failed setting config value ExecutionMaxIdleTime",
                                       "(error) Failed setting config value SendMsgRetries"]
    # string2ll: no spaces, no '+', no leading zeros
    assert all(is_error(x) for x in configset(r, "MaxExecutions", " 5", "MaxExecutions", "+5",
                                               "MaxExecutions", "05"))
    # A missing value: a core key's setter fails; any other key "Value was not given".
    assert str(configset(r, "MaxExecutions")[0]) == "(error) Failed setting config value MaxExecutions"
    reply = configset(r, "MaxExecutions", "9", "Dangling")
    assert reply[0] == "OK" and str(reply[1]) == "(error) Value was not given to Dangling"
    # ConfigVal_MaxExecutionsSet takes any integer.
    assert configset(r, "MaxExecutions", "0", "MaxExecutionsPerRegistration", "-1") == ["OK", "OK"]
    assert configget(r, "MaxExecutions", "MaxExecutionsPerRegistration") == [0, -1]
    assert len(pyexec(r, "GB('ShardsIDReader').run()")[0]) == 1  # executions still work
    assert configset(r, "MaxExecutions", "1000", "MaxExecutionsPerRegistration", "100") == ["OK", "OK"]


def test_configset_python_plugin_keys(fresh_server):
    r = fresh_server.client()
    # Python keys are not core keys: Python_BeforeConfigChange checks them (strcmp), then the
    # value is saved in the extra dictionary as well.
    assert configset(r, "PythonAttemptTraceback", "0") == [EXTRA_SAVED]
    assert configget(r, "PythonAttemptTraceback") == [0]
    assert configset(r, "PythonAttemptTraceback", "7") == [EXTRA_SAVED]
    assert configget(r, "PythonAttemptTraceback") == [1]  # PythonConfigType_Bool: val != 0
    assert configset(r, "PythonInstallReqMaxIdleTime", "100") == [EXTRA_SAVED]
    assert configget(r, "PythonInstallReqMaxIdleTime") == [100]
    reply = configset(r, "CreateVenv", "1", "PythonInstallReqMaxIdleTime", "0", "PythonAttemptTraceback", "x")
    assert [str(x) for x in reply] == [
        "(error) CreateVenv is not configurable at runtime",
        "Failed setting config value for key 'PythonInstallReqMaxIdleTime' with value '0'",
        "Failed setting config value for key 'PythonAttemptTraceback' with value 'x'"]
    assert str(configset(r, "DependenciesUrl", "x")[0]) == "(error) DependenciesUrl is not configurable at runtime"
    # Another spelling is not the plugin's key: just an extra key.
    assert configset(r, "createvenv", "1") == [EXTRA_SAVED]
    assert configget(r, "CreateVenv", "createvenv") == [0, "1"]
    assert configget(r, "ForeceDownloadDepsOnEnterprise") == [0]  # sic, RedisGears' spelling
    assert configset(r, "PythonAttemptTraceback", "1") == [EXTRA_SAVED]


def test_configget_in_scripts_reads_the_extra_dictionary_only(fresh_server):
    r = fresh_server.client()
    # RG_GetConfig returns GearsConfig_GetExtraConfigVals(name).
    probe = ("GB('ShardsIDReader').map(lambda x: str((configGet('Foo'), configGet('MaxExecutions'), "
             "configGet('PythonAttemptTraceback')))).run()")
    assert pyexec(r, probe) == [["(None, None, None)"], []]
    assert configset(r, "Foo", "bar", "PythonAttemptTraceback", "1") == [EXTRA_SAVED, EXTRA_SAVED]
    assert pyexec(r, probe) == [["('bar', None, '1')"], []]


def test_configset_unknown_key_goes_to_extra_config(fresh_server):
    r = fresh_server.client()
    assert configset(r, "MyExtraKey", "MyVal") == [EXTRA_SAVED]
    assert configget(r, "MyExtraKey") == ["MyVal"]
    script = ("execute('set', 'cg', repr(configGet('MyExtraKey')))\n"
              "execute('set', 'gcg', repr(gearsConfigGet('MyExtraKey')))\n"
              "execute('set', 'missing', repr(configGet('NoSuchConfigKey')))\n"
              "execute('set', 'dflt', repr(gearsConfigGet('NoSuchConfigKey', 'fallback')))\n")
    assert pyexec(r, script) == "OK"
    assert r.get("cg") == "'MyVal'"
    assert r.get("gcg") == "'MyVal'"
    assert r.get("missing") == "None"
    assert r.get("dflt") == "'fallback'"
    # overwrite is visible to new sessions
    assert configset(r, "MyExtraKey", "Other") == [EXTRA_SAVED]
    assert pyexec(r, "execute('set', 'cg2', configGet('MyExtraKey'))") == "OK"
    assert r.get("cg2") == "Other"


def test_runtime_time_limit_applies_to_new_sessions(fresh_server):
    r = fresh_server.client()
    assert configset(r, "SandboxTimeLimitMS", "1000") == ["OK"]
    t0 = time.monotonic()
    err = pyexec_err(r, "while True:\n    pass\n")
    assert "time limit" in err.lower(), err
    assert time.monotonic() - t0 < 10
    assert pyexec(r, "execute('set', 'after', '1')") == "OK"


def test_runtime_memory_limit_applies_to_new_sessions(fresh_server):
    r = fresh_server.client()
    script = "x = bytearray(150 * 1024**2)\nexecute('incr', 'allocs')"
    assert pyexec(r, script) == "OK"
    assert configset(r, "SandboxMemoryMB", "100") == ["OK"]
    assert "memory" in pyexec_err(r, script).lower()
    assert configset(r, "SandboxMemoryMB", "256") == ["OK"]
    assert pyexec(r, script) == "OK"
    assert r.get("allocs") == "2"


# ---------------------------------------------------------------- module arguments

def test_module_args(make_server):
    srv = make_server("executionThreads", "1", "Plugin", "/nonexistent.so", "TestConfig", "TestVal")
    r = srv.client()
    assert configget(r, "ExecutionThreads") == [1]
    assert configget(r, "TestConfig") == ["TestVal"]
    assert pyexec(r, "execute('set', 'tc', configGet('TestConfig'))") == "OK"
    assert r.get("tc") == "TestVal"


def test_module_args_sandbox_keys(make_server):
    srv = make_server("sandboxtimelimitms", "1500", "SandboxMemoryMB", "128", "MaxSessions", "16",
                      "MaxExecutions", "3")
    r = srv.client()
    assert configget(r, "SandboxTimeLimitMS", "SandboxMemoryMB", "MaxSessions", "MaxExecutions") \
        == [1500, 128, 16, 3]
    assert pyexec(r, "execute('set', 'ok', '1')") == "OK"
    assert "memory" in pyexec_err(r, "x = bytearray(200 * 1024**2)").lower()


# ---------------------------------------------------------------- where RG.PYEXECUTE is refused

def test_refused_inside_multi(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("in_multi", "1")
    pipe.execute_command("RG.PYEXECUTE", "execute('set', 'from_multi', '1')")
    pipe.get("in_multi")
    res = pipe.execute(raise_on_error=False)
    assert res[0] is True
    assert is_error(res[1]) and REFUSED in str(res[1])
    assert res[2] == "1"
    assert r.get("from_multi") is None


def test_refused_from_lua(r):
    with pytest.raises(redis.exceptions.ResponseError) as e:
        r.eval("return redis.pcall('RG.PYEXECUTE', \"execute('set', 'from_lua', '1')\")", 0)
    assert REFUSED in str(e.value)
    assert r.get("from_lua") is None


def test_refused_from_a_script(fresh_server):
    r = fresh_server.client()
    script = ("try:\n"
              "    execute('RG.PYEXECUTE', \"execute('set', 'nested_ran', '1')\")\n"
              "    execute('set', 'nested', 'no error')\n"
              "except Exception as e:\n"
              "    execute('set', 'nested', str(e))\n")
    assert pyexec(r, script) == "OK"
    assert REFUSED in r.get("nested")
    assert r.get("nested_ran") is None


def test_wrong_arity(r):
    with pytest.raises(redis.exceptions.ResponseError) as e:
        r.execute_command("RG.PYEXECUTE")
    assert "wrong number of arguments" in str(e.value)


def test_unknown_argument(r):
    err = pyexec_err(r, "execute('set', 'ran', '1')", "FOO")
    assert "Unknown arguments were given: FOO" in err
    assert r.get("ran") is None


def test_requirements_keyword_with_empty_list(r):
    assert pyexec(r, "execute('set', 'req', '1')", "REQUIREMENTS") == "OK"
    assert r.get("req") == "1"


def test_concurrent_clients(server, r):
    """Several clients running scripts at once all get their own correct result."""
    errors = []

    def worker(i):
        c = server.client()
        try:
            for j in range(5):
                assert pyexec(c, f"execute('rpush', 'w{i}', {j})") == "OK"
            assert c.lrange(f"w{i}", 0, -1) == [str(j) for j in range(5)]
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
