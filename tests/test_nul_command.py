"""`execute()` of a command name with a NUL in it (which redis-module's RM_Call wrapper would
panic on) is refused with an error reply, wherever it runs: at a script's top level, in a
triggered step, inside `with atomic():` (whose Redis lock must be released), on a worker or
inline on Redis's main thread. Redis keeps serving and the session stays usable."""
import threading

import pytest
import redis

from conftest import pyexec, pyexec_err


def test_at_the_top_level_it_is_an_error_of_the_script(r):
    assert "No such file or directory" in pyexec_err(r, "execute('a\\x00')")  # 1.2: strerror(ENOENT)
    assert "No such file or directory" in pyexec_err(r, "with atomic():\n    execute('set\\x00', 'k', 'v')")
    assert r.get("k") is None
    assert r.ping()
    assert pyexec(r, "execute('set', 'after', 'ok')") == "OK"
    assert r.get("after") == "ok"


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_inside_atomic_in_a_trigger_the_client_gets_an_error_and_redis_goes_on(server, clean, mode):
    r = clean
    script = ("def f(x):\n"
              "    with atomic():\n"
              "        execute('set', 'before', '1')\n"
              "        execute('a\\x00')\n"
              "    return 'unreached'\n"
              f"GB('CommandReader').map(f).register(trigger='nul', mode='{mode}')\n"
              f"GB('CommandReader').map(lambda x: execute('ping')).register(trigger='ok', mode='{mode}')\n")
    assert pyexec(r, script) == "OK"
    for _ in range(2):  # a refusal, not a failure: the session is not poisoned
        with pytest.raises(redis.ResponseError) as info:
            r.execute_command("RG.TRIGGER", "nul")
        assert "No such file or directory" in str(info.value)
        assert "unusable" not in str(info.value)
    assert r.get("before") == "1"
    # The lock atomic() took is free again: another client is served, and so is this one.
    other = server.client(socket_timeout=5)
    answered = []
    t = threading.Thread(target=lambda: answered.append(other.ping()))
    t.start()
    t.join(10)
    assert answered == [True]
    assert r.ping()
    assert r.execute_command("RG.TRIGGER", "ok") == ["PONG"]
