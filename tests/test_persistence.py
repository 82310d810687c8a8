"""Sessions that last: DEBUG RELOAD, restart from RDB and from AOF, replicas, kill -9."""
import os
import signal
import time

import pytest
import redis

from conftest import as_dict, pyexec, wait_for

# Two registrations of one session share one global counter.
SHARED = """
count = 0
def bump(x):
    global count
    count += 1
    execute('set', 'count', count)
GB().foreach(bump).register(prefix='ev:*', eventTypes=['set'], mode='sync')
GB('CommandReader').map(lambda x: bump(x) or count).register(trigger='bump', convertToStr=False)
"""


def registration_ids(c):
    return sorted(e[1] for e in c.execute_command("RG.DUMPREGISTRATIONS"))


def restart(srv):
    srv.stop()
    return srv.start()


def test_debug_reload_keeps_sessions_and_their_globals(servers):
    srv = servers("a")
    c = srv.client()
    assert pyexec(c, SHARED, "ID", "shared") == "OK"
    ids = registration_ids(c)
    c.set("ev:1", "x")
    assert c.execute_command("RG.TRIGGER", "bump") == [2]
    assert c.execute_command("DEBUG", "RELOAD") == "OK"
    assert registration_ids(c) == ids
    c.set("ev:2", "x")
    assert c.execute_command("RG.TRIGGER", "bump") == [4]  # the same globals carry on
    assert c.info("rg")["rg_nsessions"] == 1


@pytest.mark.parametrize("mode", ["rdb", "aof"])
def test_restart_recreates_sessions_with_one_shared_namespace(servers, mode):
    args = ("--appendonly", "yes", "--appendfsync", "always") if mode == "aof" else ()
    srv = servers(mode, *args)
    c = srv.client()
    assert pyexec(c, SHARED, "ID", "shared", "DESCRIPTION", "counter") == "OK"
    ids = registration_ids(c)
    c.set("ev:1", "x")
    assert c.get("count") == "1"
    if mode == "rdb":
        c.save()
    srv.stop()
    c = srv.start().client()
    assert registration_ids(c) == ids  # none missing, none doubled
    assert c.get("count") == "1"  # re-running the script did not repeat its writes
    [s] = [as_dict(e) for e in c.execute_command("RG.PYDUMPSESSIONS")]
    assert s["ID"] == "shared" and s["sessionDescription"] == "counter"
    # both registrations still share one namespace (re-created from the script: count = 0)
    c.set("ev:2", "x")
    assert c.execute_command("RG.TRIGGER", "bump") == [2]
    # and new registrations get new ids
    assert pyexec(c, "GB('CommandReader').register(trigger='later')") == "OK"
    assert len(set(registration_ids(c))) == 3


def test_upgrade_and_unregister_survive_a_restart(servers):
    srv = servers("u", "--appendonly", "yes")
    c = srv.client()
    assert pyexec(c, "GB('CommandReader').map(lambda x: 'v1').register(trigger='ver')", "ID", "app") == "OK"
    assert pyexec(c, "GB('CommandReader').map(lambda x: 'v2').register(trigger='ver')", "ID", "app", "UPGRADE") == "OK"
    assert pyexec(c, "GB('CommandReader').register(trigger='gone')", "ID", "gone") == "OK"
    gone = [e[1] for e in c.execute_command("RG.DUMPREGISTRATIONS") if e[7][-1][1] == "gone"]
    assert c.execute_command("RG.UNREGISTER", gone[0]) == "OK"
    ids = registration_ids(c)
    c = restart(srv).client()
    assert registration_ids(c) == ids
    assert c.execute_command("RG.TRIGGER", "ver") == ["v2"]


def test_kill_9_after_ok_keeps_the_registration(servers):
    srv = servers("k", "--appendonly", "yes", "--appendfsync", "always")
    c = srv.client()
    assert pyexec(c, "GB('CommandReader').map(lambda x: 'alive').register(trigger='k9')", "ID", "k9") == "OK"
    os.kill(srv.pid, signal.SIGKILL)
    srv.proc.wait()
    c = srv.start().client()
    assert c.execute_command("RG.TRIGGER", "k9") == ["alive"]


def test_replica_has_the_registrations_and_does_not_fire(servers):
    primary = servers("p")
    p = primary.client()
    assert pyexec(p, SHARED, "ID", "shared") == "OK"
    replica = servers("r", "--replicaof", "127.0.0.1", str(primary.port))
    rc = replica.client()
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=10)
    # registered after the sync: reaches the replica as a command
    assert pyexec(p, "GB('CommandReader').register(trigger='late')", "ID", "late") == "OK"
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=10)
    p.set("ev:1", "x")  # fires once, on the primary; the replica gets its effect
    assert p.get("count") == "1"
    assert wait_for(lambda: rc.get("count") == "1", timeout=5)
    time.sleep(0.3)
    assert rc.get("count") == "1"
    late = [e[1] for e in p.execute_command("RG.DUMPREGISTRATIONS") if e[7][-1][1] == "late"]
    p.execute_command("RG.UNREGISTER", late[0])
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=5)
    # after failover the former replica's registrations fire
    rc.execute_command("REPLICAOF", "NO", "ONE")
    rc.set("ev:9", "x")
    assert rc.get("count") == "1"  # re-created from the script on the replica: its own count


def test_a_session_that_cannot_be_restored_is_listed(servers, tmp_path):
    srv = servers("f")
    c = srv.client()
    script = ("if execute('ping') is None:\n"  # None only while restoring
              "    raise Exception('refusing to come back')\n"
              "GB('CommandReader').register(trigger='f')")
    assert pyexec(c, script, "ID", "fragile") == "OK"
    c.save()
    c = restart(srv).client()
    assert srv.wait_for_log("could not restore session fragile")
    [s] = [as_dict(e) for e in c.execute_command("RG.PYDUMPSESSIONS")]
    assert s["ID"] == "fragile" and "refusing to come back" in s["sessionDescription"]


def test_keyed_time_event_survives_reload_and_restart(servers):
    srv = servers("te")
    c = srv.client()
    script = "def tick():\n    execute('incr', 'ticks')\nregisterTE(1, tick, 'te:key')\n" \
             "GB('CommandReader').register(trigger='keep')"  # a registration: the session is saved
    assert pyexec(c, script, "ID", "te") == "OK"
    assert wait_for(lambda: int(c.get("ticks") or 0) >= 1, timeout=3)
    assert c.execute_command("DEBUG", "RELOAD") == "OK"
    before = int(c.get("ticks"))
    assert wait_for(lambda: int(c.get("ticks")) >= before + 2, timeout=4)
    assert c.info("rg")["rg_ntimeevents"] == 1
    c.save()
    c = restart(srv).client()
    before = int(c.get("ticks"))
    assert wait_for(lambda: int(c.get("ticks")) >= before + 2, timeout=4)
    assert c.info("rg")["rg_ntimeevents"] == 1  # re-attached, not doubled
    c.delete("te:key")
    assert wait_for(lambda: c.info("rg")["rg_ntimeevents"] == 0, timeout=3)


# ---- Hardening II: hooks, failed sessions, the aux field, forks, stream positions -------------

def raw(c, *args):
    """A command's reply without redis-py's per-command parsing (a hook may change SET's)."""
    conn = c.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        c.connection_pool.release(conn)


# A hook and a commands= registration: both ask Redis (COMMAND INFO) whether the command
# can be wrapped, which must work while the script is re-run to restore the session.
HOOKS = """
def upper(x):
    return call_next(x[1], x[2].upper())
GB('CommandReader').map(upper).register(hook='set', keyprefix='up:')
def mark(x):
    override_reply('marked ' + x['key'])
GB().foreach(mark).register(prefix='m:*', commands=['hset'])
"""


def assert_hooks_work(c):
    assert raw(c, "SET", "up:1", "abc") == "OK"
    assert c.get("up:1") == "ABC"
    assert raw(c, "HSET", "m:1", "a", "b") == "marked m:1"


@pytest.mark.parametrize("mode", ["rdb", "aof"])
def test_hook_and_commands_registrations_come_back_after_a_restart(servers, mode):
    args = ("--appendonly", "yes", "--appendfsync", "always") if mode == "aof" else ()
    srv = servers("hooks-" + mode, *args)
    c = srv.client()
    assert pyexec(c, HOOKS, "ID", "hooks") == "OK"
    ids = registration_ids(c)
    assert len(ids) == 2
    if mode == "rdb":
        c.save()
    c = restart(srv).client()
    assert "could not restore" not in srv.log_text()
    assert registration_ids(c) == ids
    assert_hooks_work(c)


def test_hook_and_commands_registrations_reach_a_replica(servers):
    primary = servers("hp")
    p = primary.client()
    assert pyexec(p, HOOKS, "ID", "hooks") == "OK"  # reaches the replica in the RDB
    replica = servers("hr", "--replicaof", "127.0.0.1", str(primary.port))
    rc = replica.client()
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    assert wait_for(lambda: registration_ids(rc) == registration_ids(p), timeout=10)
    # and as RG.INNERREGISTER after the sync
    assert pyexec(p, "GB('CommandReader').map(lambda x: 'late').register(hook='lpush')", "ID", "late") == "OK"
    assert wait_for(lambda: len(registration_ids(rc)) == 3, timeout=10)
    assert registration_ids(rc) == registration_ids(p)
    assert "could not restore" not in replica.log_text()
    rc.execute_command("REPLICAOF", "NO", "ONE")
    assert_hooks_work(rc)
    assert raw(rc, "LPUSH", "l", "x") == "late"


def test_a_session_that_failed_to_restore_is_kept_until_it_comes_back(servers, tmp_path):
    from test_requirements import make_wheel
    house = tmp_path / "wheels"
    house.mkdir()
    wheel = make_wheel(house, "tinylib", "1.0", {"tinylib/__init__.py": "VERSION = '1.0'\n"})
    srv = servers("keep", module_args=("WheelhouseDir", house))
    c = srv.client()
    script = "import tinylib\nGB('CommandReader').map(lambda x: tinylib.VERSION).register(trigger='v')"
    assert pyexec(c, script, "ID", "needs", "REQUIREMENTS", "tinylib") == "OK"
    ids = registration_ids(c)
    c.save()
    srv.stop()
    hidden = tmp_path / "hidden.whl"
    wheel.rename(hidden)  # a temporary problem: the wheel is gone for one run
    c = srv.start().client()
    assert srv.wait_for_log("could not restore session needs")
    [s] = [as_dict(e) for e in c.execute_command("RG.PYDUMPSESSIONS")]
    assert s["ID"] == "needs"
    c.save()  # saved while it is only listed as failed
    assert c.execute_command("DEBUG", "RELOAD") == "OK"  # and through a reload
    c.save()
    srv.stop()
    hidden.rename(wheel)
    c = srv.start().client()
    assert registration_ids(c) == ids  # back, with its ids
    assert c.execute_command("RG.TRIGGER", "v") == ["1.0"]


def test_unregistering_a_failed_session_drops_it(servers, tmp_path):
    srv = servers("drop")
    c = srv.client()
    script = ("if execute('ping') is None:\n"  # None only while restoring
              "    raise Exception('refusing to come back')\n"
              "GB('CommandReader').register(trigger='f')")
    assert pyexec(c, script, "ID", "fragile") == "OK"
    [rid] = registration_ids(c)
    c.save()
    c = restart(srv).client()
    assert srv.wait_for_log("could not restore session fragile")
    c.save()
    c = restart(srv).client()
    assert srv.wait_for_log("could not restore session fragile")  # still saved
    assert c.execute_command("RG.UNREGISTER", rid) == "OK"
    assert c.execute_command("RG.PYDUMPSESSIONS") == []
    c.save()
    c = restart(srv).client()
    assert c.execute_command("RG.PYDUMPSESSIONS") == []
    assert "could not restore" not in srv.log_text()


def start_expecting_exit(srv, timeout=30):
    """Starts `srv`'s redis-server, which must stop by itself; returns its log."""
    from conftest import free_port
    import subprocess
    srv.port = free_port()
    os.unlink(srv.logfile)
    srv.proc = subprocess.Popen(srv._argv(), cwd=srv.workdir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        srv.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait()
        pytest.fail("redis-server started with an unreadable saved-sessions blob")
    srv.proc = None
    return srv.log_text()


def test_an_unreadable_sessions_blob_fails_the_load(servers):
    srv = servers("bad", "--rdbchecksum", "no", "--rdbcompression", "no")
    c = srv.client()
    assert pyexec(c, "GB('CommandReader').register(trigger='t')", "ID", "s") == "OK"
    c.set("k", "v")
    c.save()
    srv.stop()
    path = os.path.join(srv.workdir, "dump.rdb")
    with open(path, "rb") as f:
        data = f.read()
    tag = b"wasmgears-sessions-"
    assert data.count(tag) == 1
    with open(path, "wb") as f:
        f.write(data.replace(tag, b"X" * len(tag)))
    # Redis stops (after running its RDB check, whose exit code says the file is well formed)
    log = start_expecting_exit(srv)
    assert "unreadable saved sessions" in log
    assert "Ready to accept connections" not in log


def redis_version(c):
    return tuple(int(p) for p in c.info("server")["redis_version"].split(".")[:2])


def test_an_rdb_without_sessions_loads_without_the_module(servers):
    srv = servers("plain")
    c = srv.client()
    if redis_version(c) < (7, 2):
        pytest.skip("Redis < 7.2 writes a module's aux field whatever it holds (no aux_save2)")
    assert pyexec(c, "GB().map(lambda x: x).run()") is not None  # used, but nothing registered
    c.set("k", "v")
    c.save()
    srv.stop()
    argv = srv._argv()
    srv._argv = lambda: argv[:argv.index("--loadmodule")]
    c = srv.start().client()
    assert c.get("k") == "v"


def test_bgsave_children_exit_while_workers_run_and_registrations_change(servers):
    import threading
    srv = servers("fork", "--appendonly", "yes")  # AOF rewrites fork and save the sessions too
    c = srv.client()
    # Many registrations: replacing them keeps the registry busy on a worker thread.
    many = "\n".join(["for i in range(1500):",
                      "    GB('CommandReader').register(trigger='t%d' % i)",
                      "GB().foreach(lambda x: execute('incr', 'fired')).register(prefix='w:*')"])
    assert pyexec(c, many, "ID", "many") == "OK"
    stop = threading.Event()
    errors = []

    def churn(job):
        w = srv.client()
        i = 0
        try:
            while not stop.is_set():
                job(w, i)
                i += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(f"{type(e).__name__}: {e}")

    jobs = [
        lambda w, i: pyexec(w, many, "ID", "many", "UPGRADE"),
        lambda w, i: pyexec(w, "GB('CommandReader').register(trigger='x%d')" % (i % 3), "ID", "x%d" % (i % 3),
                           "UPGRADE"),
        lambda w, i: w.set("w:%d" % (i % 100), i),
        lambda w, i: pyexec(w, "GB().map(lambda x: x).run('w:*')"),
    ]
    threads = [threading.Thread(target=churn, args=(job,), daemon=True) for job in jobs]
    for t in threads:
        t.start()
    def idle():
        info = c.info("persistence")
        return info["rdb_bgsave_in_progress"] == 0 and info["aof_rewrite_in_progress"] == 0

    try:
        for n in range(200):
            assert c.bgsave()
            assert wait_for(idle, timeout=20, interval=0.005), f"BGSAVE child {n} did not exit"
            assert c.info("persistence")["rdb_last_bgsave_status"] == "ok"
            if n % 20 == 0:
                c.bgrewriteaof()
                assert wait_for(idle, timeout=20, interval=0.005), f"AOF rewrite child {n} did not exit"
                assert c.info("persistence")["aof_last_bgrewrite_status"] == "ok"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert int(c.get("fired")) > 0


STREAM = """
def seen(r):
    execute('rpush', 'seen', r['id'])
GB('StreamReader').foreach(seen).register(prefix='s', trimStream=False)
"""


def seen(c):
    return c.lrange("seen", 0, -1)


@pytest.mark.parametrize("mode", ["rdb", "aof"])
def test_stream_positions_survive_a_restart(servers, mode):
    args = ("--appendonly", "yes", "--appendfsync", "always") if mode == "aof" else ()
    srv = servers("pos-" + mode, *args)
    c = srv.client()
    assert pyexec(c, STREAM, "ID", "streams") == "OK"
    ids = [c.xadd("s", {"n": i}) for i in range(3)]
    assert wait_for(lambda: seen(c) == ids)
    if mode == "rdb":
        c.save()
    c = restart(srv).client()
    ids.append(c.xadd("s", {"n": 3}))
    assert wait_for(lambda: len(seen(c)) >= 4)
    time.sleep(0.3)
    assert seen(c) == ids  # nothing processed twice, nothing skipped


def test_stream_positions_reach_a_replica_and_survive_a_failover(servers):
    primary = servers("sp")
    p = primary.client()
    assert pyexec(p, STREAM, "ID", "streams") == "OK"
    ids = [p.xadd("s", {"n": i}) for i in range(2)]
    assert wait_for(lambda: seen(p) == ids)
    replica = servers("sr", "--replicaof", "127.0.0.1", str(primary.port))  # positions in the RDB
    rc = replica.client()
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    ids += [p.xadd("s", {"n": i}) for i in range(2, 4)]  # and as commands after the sync
    assert wait_for(lambda: seen(p) == ids)
    assert wait_for(lambda: seen(rc) == ids, timeout=10)
    offset = lambda: p.info("replication")["master_repl_offset"]
    assert wait_for(lambda: rc.info("replication")["slave_repl_offset"] == offset(), timeout=10)
    rc.execute_command("REPLICAOF", "NO", "ONE")
    ids.append(rc.xadd("s", {"n": 4}))
    assert wait_for(lambda: len(seen(rc)) >= 5)
    time.sleep(0.3)
    assert seen(rc) == ids


def test_stream_entries_left_unprocessed_at_a_failover_are_processed_by_the_new_primary(servers):
    primary = servers("bp")
    p = primary.client()
    assert pyexec(p, STREAM, "ID", "streams") == "OK"
    replica = servers("br", "--replicaof", "127.0.0.1", str(primary.port))
    rc = replica.client()
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    ids = [p.xadd("s", {"n": i}) for i in range(2)]
    assert wait_for(lambda: seen(p) == ids)
    [rid] = registration_ids(p)
    assert p.execute_command("RG.PAUSEREGISTRATIONS", rid) == "OK"  # as if it fell behind
    ids += [p.xadd("s", {"n": i}) for i in range(2, 5)]
    offset = lambda: p.info("replication")["master_repl_offset"]
    assert wait_for(lambda: rc.info("replication")["slave_repl_offset"] == offset(), timeout=10)
    assert seen(rc) == ids[:2]
    rc.execute_command("REPLICAOF", "NO", "ONE")
    ids.append(rc.xadd("s", {"n": 5}))  # the first entry after the failover reads the backlog too
    assert wait_for(lambda: len(seen(rc)) >= 6)
    time.sleep(0.3)
    assert seen(rc) == ids
