"""Hostile scripts, more of the catalogue: each gets an error or a harmless outcome, Redis keeps
answering, and nothing of another session or of Redis's data is reachable."""
import threading

import pytest
import redis

from conftest import pyexec, pyexec_err, wait_for


def assert_fine(r):
    assert r.ping()
    assert pyexec(r, "execute('set', 'after', 'ok')") == "OK"
    assert r.get("after") == "ok"


@pytest.mark.parametrize("family", ["AF_INET", "AF_INET6", "AF_UNIX"])
def test_no_socket_of_any_family(r, family):
    err = pyexec_err(r, f"import socket\nsocket.socket(socket.{family}, socket.SOCK_STREAM)")
    assert "Error" in err
    assert_fine(r)


@pytest.mark.parametrize("snippet, expected", [
    ("import os\nos.fork()", "fork"),
    ("import os\nos.kill(1, 9)", "kill"),
    ("import signal\nsignal.raise_signal(signal.SIGTERM)", ""),
    ("import ctypes", "ctypes"),
    ("import _posixsubprocess", "_posixsubprocess"),
    ("import threading\nthreading.Thread(target=print).start()", "thread"),
])
def test_processes_signals_threads_ctypes_are_absent(r, snippet, expected):
    err = pyexec_err(r, snippet)
    assert expected in err
    assert_fine(r)


def test_dup2_over_the_stdlib_hurts_only_that_session(r):
    # The script points fd 3 (its stdlib mount) elsewhere; only its own imports suffer.
    try:
        pyexec(r, "import os\ntry:\n    os.dup2(0, 3)\nexcept OSError:\n    pass\nimport csv")
    except redis.ResponseError:
        pass
    assert pyexec(r, "import csv, fractions\nexecute('set', 'imports', 'ok')") == "OK"
    assert r.get("imports") == "ok"


def test_argv_and_environment_are_empty(r):
    assert pyexec(r, "import os, sys\nexecute('set', 'argv', repr(sys.argv))\n"
                     "execute('set', 'env', repr(dict(os.environ)))") == "OK"
    assert r.get("argv") == "['']"
    assert r.get("env") == "{}"


def test_another_sessions_objects_are_unreachable(server, r):
    """A session kept alive by an execution holds a secret; another session searches every
    object its interpreter can find (gc, sys.modules, frames) and sees nothing of it."""
    holder = ("import time\n"
              "SECRET = 's3cr3t'\n"
              "def hold(x):\n"
              "    time.sleep(3)\n"
              "    return x\n"
              "GB('PythonReader').map(hold).run(lambda: (x for x in [1]))\n")
    eid = pyexec(r, holder, "UNBLOCKING")
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] >= 1, 5)
    # Looks for the holder's global namespace (a dict with SECRET) everywhere it can.
    search = ("import gc, sys\n"
              "def has(d):\n"
              "    return isinstance(d, dict) and 'SECRET' in d\n"
              "found = any(has(o) for o in gc.get_objects())\n"
              "found = found or any(has(getattr(m, '__dict__', None)) for m in list(sys.modules.values()))\n"
              "f = sys._getframe()\n"
              "while f is not None:\n"
              "    found = found or has(f.f_globals)\n"
              "    f = f.f_back\n"
              "execute('set', 'found', str(found))\n")
    assert pyexec(r, search) == "OK"
    assert r.get("found") == "False"
    r.execute_command("RG.GETRESULTSBLOCKING", eid)
    r.execute_command("RG.DROPEXECUTION", eid)


def test_flow_with_a_huge_result_is_an_error(r):
    reply = pyexec(r, "GB('PythonReader').run(lambda: (b'x' * 10**7 for i in range(10**4)))")
    assert reply[0] == [] and "MemoryError" in reply[1][0]
    assert_fine(r)


def test_execute_returning_100mb(r):
    script = ("execute('set', 'big', 'x' * (100 * 1024 * 1024))\n"
              "execute('set', 'biglen', len(execute('get', 'big')))\n")
    assert pyexec(r, script) == "OK"
    assert r.get("biglen") == str(100 * 1024 * 1024)
    r.delete("big")
    assert_fine(r)


def test_giant_script_argument(r):
    # 300 MB of source: more than the session's memory can hold.
    big = "#" + "x" * (300 * 1024 * 1024)
    err = pyexec_err(r, big)
    assert "MemoryError" in err or "memory" in err.lower()
    assert_fine(r)


def test_many_clients_while_a_script_spins(limited_server):
    r = limited_server.client()
    spinner = threading.Thread(target=lambda: pyexec_err(limited_server.client(), "while True: pass"))
    spinner.start()
    for i in range(50):
        assert r.set(f"k{i}", i)
    spinner.join()
    assert r.get("k49") == "49"


def test_reply_size_cap(r):
    r.execute_command("RG.CONFIGSET", "SandboxMaxReplyMB", "1")
    try:
        r.set("two_mb", "x" * (2 << 20))
        err = pyexec_err(r, "execute('get', 'two_mb')")
        assert "exceeds the limit of 1 MB (SandboxMaxReplyMB)" in err
        reply = pyexec(r, "GB('PythonReader').run(lambda: ('y' * 1000 for i in range(3000)))")
        assert reply[0] == [] and "SandboxMaxReplyMB" in reply[1][0]
        assert pyexec(r, "execute('strlen', 'two_mb')") == "OK"  # small replies still fine
    finally:
        r.execute_command("RG.CONFIGSET", "SandboxMaxReplyMB", "128")
        r.delete("two_mb")
    assert_fine(r)


def test_memory_held_by_a_time_event_is_capped(r):
    r.execute_command("RG.CONFIGSET", "SandboxMemoryMB", "64")
    try:
        script = ("hoard = []\n"
                  "def grow():\n"
                  "    hoard.append(bytearray(16 << 20))\n"
                  "    execute('set', 'hoard', len(hoard))\n"
                  "registerTE(1, grow)\n")
        assert pyexec(r, script) == "OK"
        # MemoryError inside the callback stops the event; its session is then freed
        assert wait_for(lambda: r.info("rg")["rg_ntimeevents"] == 0, timeout=10)
        assert 1 <= int(r.get("hoard")) < 4
        assert wait_for(lambda: r.info("rg")["rg_guest_memory_bytes"] == 0, timeout=5)
    finally:
        r.execute_command("RG.CONFIGSET", "SandboxMemoryMB", "256")
    assert_fine(r)
