"""RG.PYEXECUTE basics: replies, the script API (execute/log/print), error texts, per-session isolation."""
import ast
import socket
import uuid

import redis

from conftest import pyexec, pyexec_err


def marker(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- replies and logging

def test_script_without_output_replies_ok(r):
    assert pyexec(r, "x = 1") == "OK"
    assert pyexec(r, "") == "OK"


def test_ok_is_a_simple_string_reply(server):
    script = b"x = 1"
    req = b"*2\r\n$12\r\nRG.PYEXECUTE\r\n$%d\r\n%s\r\n" % (len(script), script)
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.sendall(req)
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data == b"+OK\r\n"


def test_log_writes_to_redis_log(server, r):
    msg = marker("hello-from-gears")
    assert pyexec(r, f"log('{msg}')") == "OK"
    assert server.wait_for_log(f"GEARS: {msg}"), server.log_tail()


def test_log_levels_and_module_log(server, r):
    warn = marker("warning-level")
    via_module = marker("via-redisgears-log")
    via_alias = marker("via-rg-log")
    assert pyexec(r, f"log('{warn}', level='warning')\n"
                     f"redisgears.log('{via_module}')\n"
                     f"rg.log('{via_alias}')") == "OK"
    for m in (warn, via_module, via_alias):
        assert server.wait_for_log(m), server.log_tail()


def test_log_rejects_unknown_level(r):
    err = pyexec_err(r, "log('x', level='bogus-level')")
    assert "level" in err.lower()


def test_print_goes_to_redis_log(server, r):
    msg = marker("printed-line")
    assert pyexec(r, f"print('{msg}')") == "OK"
    assert server.wait_for_log(msg), server.log_tail()


def test_script_globals_provide_gears_api(r):
    names = ["execute", "log", "configGet", "gearsConfigGet", "redisgears", "rg",
             "GB", "GearsBuilder"]
    script = (f"missing = [n for n in {names!r} if n not in globals()]\n"
              "execute('set', 'missing', repr(missing))\n"
              "execute('set', 'callables', repr([callable(execute), callable(log),\n"
              "    callable(redisgears.executeCommand), callable(redisgears.log),\n"
              "    callable(configGet), callable(gearsConfigGet)]))\n")
    assert pyexec(r, script) == "OK"
    assert r.get("missing") == "[]"
    assert r.get("callables") == repr([True] * 6)


# ---------------------------------------------------------------- execute()

def test_execute_writes_and_converts_replies(r):
    script = """
execute('set', 'k', 'v')
execute('hset', 'h', 'f1', 'a', 'f2', 'b')
execute('set', 'missing_repr', repr(execute('get', 'no-such-key')))
execute('set', 'incr_type', type(execute('incr', 'c')).__name__)
execute('set', 'get_repr', repr(execute('get', 'k')))
execute('set', 'status_repr', repr(execute('set', 'tmp', 'x')))
execute('rpush', 'l', 'a', 'b')
execute('set', 'lrange_repr', repr(execute('lrange', 'l', 0, -1)))
execute('set', 'num', 42)
redisgears.executeCommand('set', 'via_module', 'm')
rg.executeCommand('set', 'via_alias', 'a')
"""
    assert pyexec(r, script) == "OK"
    assert r.get("k") == "v"
    assert r.hgetall("h") == {"f1": "a", "f2": "b"}
    assert r.get("missing_repr") == "None"
    assert r.get("incr_type") == "int"
    assert r.get("c") == "1"
    assert r.get("get_repr") == "'v'"
    assert r.get("status_repr") == "'OK'"
    assert r.get("lrange_repr") == "['a', 'b']"
    assert r.get("num") == "42"
    assert r.get("via_module") == "m"
    assert r.get("via_alias") == "a"


def test_execute_error_is_catchable(r):
    r.set("s", "a string")
    script = ("try:\n"
              "    execute('lpush', 's', 'x')\n"
              "except Exception as e:\n"
              "    execute('set', 'err', str(e))\n")
    assert pyexec(r, script) == "OK"
    assert "WRONGTYPE" in r.get("err")
    assert r.get("s") == "a string"


def test_execute_error_class_is_gears_error(r):
    r.set("s", "a string")
    script = ("try:\n"
              "    execute('lpush', 's', 'x')\n"
              "except Exception as e:\n"
              "    execute('set', 'cls', type(e).__module__ + '.' + type(e).__name__)\n")
    assert pyexec(r, script) == "OK"
    assert r.get("cls") == "gears.error"


def test_uncaught_execute_error_becomes_error_reply(r):
    r.set("s", "a string")
    assert "WRONGTYPE" in pyexec_err(r, "execute('lpush', 's', 'x')")
    err = pyexec_err(r, "execute('nosuchcmd_wg')")
    assert "gears.error: No such file or directory" in err  # 1.2: strerror(ENOENT)
    assert "must be a string" in pyexec_err(r, "execute(1)")


def test_execute_sends_each_argument_as_redisgears_does(r):
    script = ("class Weird(bytes):\n"
              "    def __bytes__(self):\n"
              "        return b'from-bytes'\n"
              "execute('RPUSH', 'args', 1, 2.5, True, None, b'raw\\xff', bytearray(b'ba'), Weird(b'x'), 'txt')\n"
              "try:\n"
              "    execute()\n"
              "except TypeError as e:\n"
              "    execute('SET', 'missing', str(e))\n")
    assert pyexec(r, script) == "OK"
    raw = r.connection_pool.connection_kwargs
    assert redis.Redis(port=raw["port"]).lrange("args", 0, -1) == [
        b"1", b"2.5", b"True", b"None", b"raw\xff", b"ba", b"from-bytes", b"txt"]
    assert r.get("missing") == "execute() missing 1 required positional argument: 'command'"


def test_writes_before_an_exception_are_kept(r):
    err = pyexec_err(r, "execute('set', 'before', '1')\nraise ValueError('boom-value-error')")
    assert "ValueError" in err and "boom-value-error" in err
    assert r.get("before") == "1"


# ---------------------------------------------------------------- error texts

def test_syntax_error_reply(r):
    err = pyexec_err(r, "x = = 1")
    assert "invalid syntax" in err
    assert "SyntaxError" in err


def test_name_error_reply(r):
    err = pyexec_err(r, "print(nope)")
    assert "is not defined" in err
    assert "NameError" in err


def test_error_reply_is_repr_of_traceback_lines(r):
    err = pyexec_err(r, "def inner():\n    return undefined_name_wg\ninner()\n")
    # str(traceback.format_exception(...)): a list repr, newlines as backslash-n escapes
    assert "['Traceback (most recent call last):\\n'" in err
    assert "in inner" in err
    assert "NameError: name 'undefined_name_wg' is not defined" in err
    assert "\n" not in err


def test_exception_class_and_message_in_reply(r):
    err = pyexec_err(r, "raise KeyError('custom-key-message')")
    assert "KeyError" in err and "custom-key-message" in err


# ---------------------------------------------------------------- isolation between sessions

def test_globals_are_not_shared_between_scripts(r):
    assert pyexec(r, "x = 1\ndef helper():\n    return 2\n") == "OK"
    assert pyexec(r, "execute('set', 'seen', str('x' in globals() or 'helper' in globals()))") == "OK"
    assert r.get("seen") == "False"


def test_same_script_twice_starts_fresh(r):
    script = "counter = globals().get('counter', 0) + 1\nexecute('rpush', 'counts', counter)"
    assert pyexec(r, script) == "OK"
    assert pyexec(r, script) == "OK"
    assert r.lrange("counts", 0, -1) == ["1", "1"]


def test_module_state_is_not_shared_between_scripts(r):
    assert pyexec(r, "import json\njson.marker = 42") == "OK"
    assert pyexec(r, "import json\nexecute('set', 'm', str(hasattr(json, 'marker')))") == "OK"
    assert r.get("m") == "False"


def test_sys_modules_is_not_shared_between_scripts(r):
    assert pyexec(r, "import sys\nsys.modules['evil'] = 1") == "OK"
    script = ("import sys\n"
              "execute('set', 'in_modules', str('evil' in sys.modules))\n"
              "try:\n"
              "    import evil\n"
              "    execute('set', 'imported', 'yes')\n"
              "except ImportError:\n"
              "    execute('set', 'imported', 'no')\n")
    assert pyexec(r, script) == "OK"
    assert r.get("in_modules") == "False"
    assert r.get("imported") == "no"


def test_builtins_patch_is_not_shared(r):
    assert pyexec(r, "import builtins\nbuiltins.len = lambda x: -1\nbuiltins.wg_marker = 1") == "OK"
    assert pyexec(r, "import builtins\n"
                     "execute('set', 'b', repr((len('abc'), hasattr(builtins, 'wg_marker'))))") == "OK"
    assert r.get("b") == "(3, False)"


def test_random_differs_between_sessions(r):
    assert pyexec(r, "import random\nexecute('set', 'r1', repr(random.random()))") == "OK"
    assert pyexec(r, "import random\nexecute('set', 'r2', repr(random.random()))") == "OK"
    r1, r2 = r.get("r1"), r.get("r2")
    assert isinstance(ast.literal_eval(r1), float)
    assert r1 != r2


def test_urandom_differs_between_sessions(r):
    script = "import os\nexecute('rpush', 'u', os.urandom(16).hex())"
    assert pyexec(r, script) == "OK"
    assert pyexec(r, script) == "OK"
    u1, u2 = r.lrange("u", 0, -1)
    assert len(u1) == 32 and u1 != u2


def test_error_in_one_script_does_not_affect_next(r):
    assert isinstance(pyexec_err(r, "raise RuntimeError('first')"), str)
    assert pyexec(r, "execute('set', 'next', 'ran')") == "OK"
    assert r.get("next") == "ran"

