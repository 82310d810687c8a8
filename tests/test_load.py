"""Load and faults: many clients mixing scripts, triggers (one of them async) and plain commands; kill -9 under
load loses nothing acknowledged."""
import os
import signal
import threading
import time

import redis

from conftest import RedisServer, pyexec

CLIENTS = int(os.environ.get("LOAD_CLIENTS", "200"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "8"))

SETUP = """
sets = 0
def on_set(r):
    global sets
    sets += 1
GB().foreach(on_set).register(prefix='load:*', eventTypes=['set'], mode='sync')
GB('CommandReader').map(lambda x: sets).register(trigger='load_sets', convertToStr=False)
GB('CommandReader').map(lambda x: int(x[1]) * 2).register(trigger='double', convertToStr=False)
import asyncio
async def later_double(x):
    await asyncio.sleep(0.001)
    return int(x[1]) * 2
GB('CommandReader').map(later_double).register(trigger='double_async', convertToStr=False)
"""


def worker(port, n, stop, stats, errors):
    c = redis.Redis(port=port, decode_responses=True, socket_timeout=60)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            kind = (n + i) % 6
            if kind == 0:
                assert c.execute_command("RG.PYEXECUTE", "x = %d" % i) == "OK"
            elif kind == 1:
                assert c.execute_command("RG.TRIGGER", "double", i) == [2 * i]
            elif kind == 2:
                c.set("load:%d:%d" % (n, i), i)
                stats["sets"][n] += 1
            elif kind == 3:
                stats["incrs"][n] = c.incr("plain:%d" % n)
            elif kind == 4:
                res = c.execute_command("RG.PYEXECUTE", "GB('PythonReader').run(lambda: iter([%d]))" % i)
                assert res == [[str(i)], []]
            else:  # a trigger whose record waits on the session's event loop
                assert c.execute_command("RG.TRIGGER", "double_async", i) == [2 * i]
    except Exception as e:  # any error is a failure: none is expected here
        errors.append(repr(e))
    finally:
        c.close()


def test_many_clients_mixing_everything(server):
    r = server.client()
    r.flushall()
    for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
        r.execute_command("RG.UNREGISTER", entry[1])
    assert pyexec(r, SETUP) == "OK"
    stop, errors = threading.Event(), []
    stats = {"sets": [0] * CLIENTS, "incrs": [0] * CLIENTS}
    threads = [threading.Thread(target=worker, args=(server.port, n, stop, stats, errors)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    total_sets = sum(stats["sets"])
    assert total_sets > 0
    # every SET ran the sync registration exactly once (a busy session queues it: wait)
    deadline = time.monotonic() + 30
    while r.execute_command("RG.TRIGGER", "load_sets") != [total_sets] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.execute_command("RG.TRIGGER", "load_sets") == [total_sets]
    for n in range(CLIENTS):
        assert int(r.get("plain:%d" % n) or 0) == stats["incrs"][n]
    assert r.ping()
    for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
        r.execute_command("RG.UNREGISTER", entry[1])


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path):
    srv = RedisServer(tmp_path / "k9", (), ("--appendonly", "yes", "--appendfsync", "always")).start()
    try:
        c = srv.client()
        assert pyexec(c, "GB('CommandReader').map(lambda x: 'up').register(trigger='k9load')", "ID", "k9") == "OK"
        acked = [0] * 50
        stop = threading.Event()

        def incr(n):
            cl = redis.Redis(port=srv.port, socket_timeout=10)
            try:
                while not stop.is_set():
                    acked[n] = cl.incr("acked:%d" % n)
                    if n % 5 == 0:
                        cl.execute_command("RG.PYEXECUTE", "x=1")
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # the server was killed

        threads = [threading.Thread(target=incr, args=(n,)) for n in range(50)]
        for t in threads:
            t.start()
        time.sleep(2)
        os.kill(srv.pid, signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        srv.proc.wait()
        c = srv.start().client()
        for n in range(50):
            assert int(c.get("acked:%d" % n) or 0) >= acked[n]
        assert sum(acked) > 0
        assert c.execute_command("RG.TRIGGER", "k9load") == ["up"]
    finally:
        srv.stop()
