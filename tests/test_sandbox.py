"""The wasm sandbox: no host access, time and memory limits, failures stay inside one session."""
import ast
import os
import threading
import time
import uuid

import redis

from conftest import (HOST_SECRET_VAL, HOST_SECRET_VAR, pyexec, pyexec_err, rss_kib,
                      wait_for)


def assert_healthy(r):
    """Redis answers and a new session can run and write."""
    assert r.ping()
    r.delete("after")
    assert pyexec(r, "execute('set', 'after', '1')") == "OK"
    assert r.get("after") == "1"


def pyexec_in_thread(srv, script):
    """Sends RG.PYEXECUTE from its own connection on a thread; returns (thread, result dict)."""
    result = {}
    client = srv.client()

    def run():
        t0 = time.monotonic()
        try:
            result["reply"] = pyexec(client, script)
        except Exception as e:  # noqa: BLE001 - reported by the test
            result["error"] = e
        result["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, result


def expect_error(result, needle):
    err = result.get("error")
    assert isinstance(err, redis.exceptions.ResponseError), f"expected an error reply, got {result!r}"
    assert needle in str(err).lower(), str(err)
    return str(err)


# ---------------------------------------------------------------- host access

def test_closing_all_fds_does_not_hurt_redis(fresh_server):
    r = fresh_server.client()
    script = ("import os\n"
              "for fd in range(256):\n"
              "    try:\n"
              "        os.close(fd)\n"
              "    except OSError:\n"
              "        pass\n")
    try:
        assert pyexec(r, script) == "OK"
    except redis.exceptions.ResponseError:
        pass  # an error reply is fine too
    assert r.ping()
    r.set("k", "v")
    assert r.get("k") == "v"
    assert pyexec(r, "import csv, fractions, statistics\nexecute('set', 'ok', '1')") == "OK"
    assert r.get("ok") == "1"
    assert_healthy(r)


def test_cannot_read_host_files(server, r):
    err = pyexec_err(r, "open('/etc/passwd').read()")
    assert "root:" not in err
    host_file = os.path.join(server.workdir, "redis.log")
    for path in ["/etc/passwd", "/lib/../../etc/passwd", "../../../../../../etc/passwd",
                 "/proc/self/environ", host_file]:
        script = ("try:\n"
                  f"    data = open({path!r}).read()\n"
                  "except Exception as e:\n"
                  "    data = 'ERR:' + type(e).__name__\n"
                  "execute('set', 'data', data)\n")
        assert pyexec(r, script) == "OK"
        data = r.get("data")
        assert data.startswith("ERR:"), f"{path} readable from the sandbox: {data[:200]!r}"


def test_cannot_write_into_stdlib(r):
    pyexec_err(r, "open('/lib/python313.zip', 'w')")
    pyexec_err(r, "open('/lib/x.py', 'w').write('x = 1')")
    # the stdlib is still intact for new sessions
    assert pyexec(r, "import decimal, textwrap\nexecute('set', 'ok', '1')") == "OK"
    assert r.get("ok") == "1"


def test_cannot_write_host_files(server, r):
    name = f"wasmgears-escape-{uuid.uuid4().hex[:10]}"
    targets = [f"/tmp/{name}", os.path.join(server.workdir, name), name]
    for path in targets:
        script = ("try:\n"
                  f"    open({path!r}, 'w').write('x')\n"
                  "except Exception:\n"
                  "    pass\n")
        try:
            pyexec(r, script)
        except redis.exceptions.ResponseError:
            pass
    for host_path in (f"/tmp/{name}", os.path.join(server.workdir, name)):
        assert not os.path.exists(host_path), f"sandbox wrote {host_path}"


def test_root_listing_hides_host(r):
    script = ("import os\n"
              "try:\n"
              "    v = repr(sorted(os.listdir('/')))\n"
              "except Exception as e:\n"
              "    v = 'ERR:' + type(e).__name__\n"
              "execute('set', 'root', v)\n")
    assert pyexec(r, script) == "OK"
    v = r.get("root")
    if not v.startswith("ERR:"):
        entries = ast.literal_eval(v)
        for host_dir in ("etc", "proc", "sys", "home", "root", "boot"):
            assert host_dir not in entries, f"host directory visible in the sandbox: {entries}"


def test_environment_has_no_host_variables(r):
    assert pyexec(r, "import os\nexecute('set', 'env', repr(sorted(os.environ.items())))") == "OK"
    env = dict(ast.literal_eval(r.get("env")))
    for var in ("PATH", "HOME", "USER", "PWD", HOST_SECRET_VAR):
        assert var not in env, f"host variable {var} visible: {env}"
    assert HOST_SECRET_VAL not in r.get("env")


def test_no_network(server, r):
    pyexec_err(r, "import socket\nsocket.socket()")
    pyexec_err(r, f"import socket\nsocket.create_connection(('127.0.0.1', {server.port}), timeout=2)")


def test_no_subprocesses(server, r):
    witness = os.path.join(server.workdir, f"spawned-{uuid.uuid4().hex[:10]}")
    script = ("import os\n"
              "try:\n"
              f"    os.system('touch {witness}')\n"
              "except Exception:\n"
              "    pass\n"
              "try:\n"
              "    import subprocess\n"
              f"    subprocess.run(['touch', {witness!r}])\n"
              "except Exception:\n"
              "    pass\n")
    try:
        pyexec(r, script)
    except redis.exceptions.ResponseError:
        pass
    assert not os.path.exists(witness)
    assert_healthy(r)


# ---------------------------------------------------------------- time limit (SandboxTimeLimitMS 1000)

def test_infinite_loop_hits_time_limit_while_redis_keeps_serving(limited_server):
    r = limited_server.client()
    r.flushall()
    pinger = limited_server.client(socket_timeout=1)
    assert pinger.ping()
    th, res = pyexec_in_thread(limited_server, "execute('set', 'started', '1')\nwhile True:\n    pass\n")
    assert wait_for(lambda: r.get("started") or not th.is_alive(), 10), "script did not start"
    pings = 0
    while th.is_alive() and pings < 5:
        t0 = time.monotonic()
        assert pinger.ping()
        assert time.monotonic() - t0 < 1.0
        pings += 1
        time.sleep(0.05)
    th.join(15)
    assert not th.is_alive(), "RG.PYEXECUTE of an endless loop did not return"
    expect_error(res, "time limit")
    assert res["elapsed"] < 10
    assert pings >= 1, "Redis did not answer PING while the script was running"
    assert_healthy(r)


def test_time_limit_cannot_be_caught(limited_server):
    r = limited_server.client()
    script = ("while True:\n"
              "    try:\n"
              "        while True:\n"
              "            pass\n"
              "    except BaseException:\n"
              "        pass\n")
    th, res = pyexec_in_thread(limited_server, script)
    th.join(15)
    assert not th.is_alive(), "a script swallowing the timeout kept running"
    expect_error(res, "time limit")
    assert res["elapsed"] < 10
    assert_healthy(r)


def test_time_limit_in_execute_loop(limited_server):
    r = limited_server.client()
    r.delete("n")
    th, res = pyexec_in_thread(limited_server, "while True:\n    execute('incr', 'n')\n")
    th.join(15)
    assert not th.is_alive()
    expect_error(res, "time limit")
    assert res["elapsed"] < 10
    assert int(r.get("n")) > 0
    assert_healthy(r)


def test_sleeping_past_the_time_limit_is_stopped(limited_server):
    # time.sleep blocks in WASI's poll_oneoff, outside wasm code: the deadline must reach it.
    r = limited_server.client()
    th, res = pyexec_in_thread(limited_server, "import time\ntime.sleep(3600)")
    th.join(15)
    assert not th.is_alive()
    expect_error(res, "time limit of 1000 ms")
    assert res["elapsed"] < 5
    started = time.monotonic()
    assert pyexec(r, "import time\nt = time.monotonic()\ntime.sleep(0.2)\nassert time.monotonic() - t >= 0.2") == "OK"
    assert time.monotonic() - started >= 0.2
    assert_healthy(r)


def test_abort_reaches_a_sleeping_execution(limited_server):
    r = limited_server.client()
    eid = r.execute_command("RG.PYEXECUTE", "import time\nGB('PythonReader').run(lambda: time.sleep(0.9) or 1)",
                            "UNBLOCKING")
    time.sleep(0.2)
    started = time.monotonic()
    assert r.execute_command("RG.ABORTEXECUTION", eid) == "OK"
    assert wait_for(lambda: dict(zip(*[iter(r.execute_command("RG.GETEXECUTION", eid)[0][3])] * 2))["status"]
                    == "aborted", timeout=2)
    assert time.monotonic() - started < 0.5
    r.execute_command("RG.DROPEXECUTION", eid)


def test_failing_sessions_leave_other_data_alone(limited_server):
    r = limited_server.client()
    r.flushall()
    r.set("client-key", "c")
    assert pyexec(r, "execute('set', 'gear-key', 'g')\nexecute('hset', 'gear-hash', 'f', 'v')") == "OK"

    th, res = pyexec_in_thread(limited_server, "execute('set', 'looping', '1')\nwhile True:\n    pass\n")
    assert wait_for(lambda: r.get("looping") or not th.is_alive(), 10)
    # another session runs to completion although one is stuck in a loop
    assert pyexec(limited_server.client(), "execute('set', 'concurrent', '1')") == "OK"
    th.join(15)
    assert not th.is_alive()
    expect_error(res, "time limit")

    assert "memory" in pyexec_err(r, "x = bytearray(1024**3)").lower()

    assert r.get("client-key") == "c"
    assert r.get("gear-key") == "g"
    assert r.hgetall("gear-hash") == {"f": "v"}
    assert r.get("concurrent") == "1"
    assert sorted(r.keys()) == ["client-key", "concurrent", "gear-hash", "gear-key", "looping"]
    assert_healthy(r)


# ---------------------------------------------------------------- memory limit (default 256 MB)

def test_absurd_allocation_is_an_error(r):
    pyexec_err(r, "bytearray(8 * 1024**3)")
    assert_healthy(r)


def test_allocation_above_cap_is_memory_error(r):
    err = pyexec_err(r, "x = bytearray(1024**3)")
    assert "memory" in err.lower(), err
    assert_healthy(r)


def test_slow_growth_stops_at_cap(r):
    err = pyexec_err(r, "l = []\nwhile True:\n    l.append(bytearray(1 << 20))\n")
    assert "memory" in err.lower(), err
    assert_healthy(r)


def test_unbounded_recursion_is_an_error(r):
    err = pyexec_err(r, "def f():\n    return f()\nf()\n")
    assert any(s in err for s in ("RecursionError", "trap", "stack")), err
    assert_healthy(r)


def test_deep_c_recursion_does_not_hurt_redis(r):
    depth = 200000
    script = f"import json\njson.loads('[' * {depth} + ']' * {depth})\n"
    try:
        pyexec(r, script)
    except redis.exceptions.ResponseError:
        pass  # RecursionError or a trap: both fine
    assert_healthy(r)


# ---------------------------------------------------------------- sessions are freed

def test_sessions_are_freed(fresh_server):
    r = fresh_server.client()
    for _ in range(50):
        assert pyexec(r, "x=1") == "OK"
    before = rss_kib(fresh_server.pid)
    for _ in range(1000):
        assert pyexec(r, "x = list(range(1000))") == "OK"
    after = rss_kib(fresh_server.pid)
    growth_mib = (after - before) / 1024
    assert growth_mib < 64, f"RSS grew by {growth_mib:.1f} MiB over 1000 sessions ({before} -> {after} KiB)"
    # Every instance was dropped with its last holder: none alive, no guest memory held.
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == 0, timeout=5)
    assert r.info("rg")["rg_guest_memory_bytes"] == 0
    assert_healthy(r)
