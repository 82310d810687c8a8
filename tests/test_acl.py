"""Redis's ACL holds through the module: RG.INNERHOOK and RG.INNERREGISTER are not for
clients, a wrapped command is judged as the client's own, and a session's execute() runs as
the ACL user that created it (`RunScriptsAs creator`, the default) unless `RunScriptsAs module`
restores RedisGears 1.2's behaviour."""
import pytest
import redis

from conftest import as_dict, pyexec, wait_for

RG_COMMANDS = ("+rg.pyexecute +rg.trigger +rg.innerhook +rg.innerregister +rg.innerunregister "
               "+rg.dumpregistrations +rg.unregister +rg.getresults")
NO_SET = "this user has no permissions to run the 'set' command"
NO_KEY = "this user has no permissions to access one of the keys used as arguments"


def error_of(client, *command):
    with pytest.raises(redis.exceptions.ResponseError) as e:
        client.execute_command(*command)
    return str(e.value)


def user_client(srv, name, rules):
    admin = srv.client()
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", "nopass", *rules.split())
    return srv.client(username=name, password="x")


@pytest.fixture
def acl_server(fresh_server):
    """A server with `reader`: GET on allowed:* plus the RG commands, nothing else."""
    admin = fresh_server.client()
    admin.flushall()
    reader = user_client(fresh_server, "reader", "+get ~allowed:* " + RG_COMMANDS)
    return fresh_server, admin, reader


def test_innerhook_is_not_callable_by_clients(acl_server):
    srv, admin, reader = acl_server
    for client in (admin, reader):
        assert "internal" in error_of(client, "RG.INNERHOOK", "set", "k", "v")
        assert "internal" in error_of(client, "RG.INNERHOOK", "0" * 32, "set", "k", "v")
    assert admin.exists("k") == 0
    # Also while commands are wrapped (the filter is active).
    assert pyexec(admin, "GB('CommandReader').map(lambda x: call_next(*x[1:])).register(hook='get')") == "OK"
    assert "internal" in error_of(reader, "RG.INNERHOOK", "set", "k", "v")
    assert admin.exists("k") == 0
    assert admin.ping()


def test_innerregister_is_refused_from_clients(acl_server):
    srv, admin, reader = acl_server
    script = "GB('CommandReader').register(trigger='sneaky')"
    for client in (admin, reader):
        err = error_of(client, "RG.INNERREGISTER", "1", "0" * 40, script)
        assert "internal" in err
        assert "internal" in error_of(client, "RG.INNERUNREGISTER", "0" * 40 + "-1")
    assert "subcommand not found" in error_of(admin, "RG.TRIGGER", "sneaky")


def test_a_hooked_command_is_judged_as_the_clients_own(acl_server):
    srv, admin, reader = acl_server
    admin.set("allowed:1", "one")
    admin.set("secret", "s")
    hook = ("calls = 0\n"
            "def hooked(x):\n"
            "    global calls\n"
            "    calls += 1\n"
            "    return call_next(*x[1:])\n"
            "GB('CommandReader').map(hooked).register(hook='get')\n"
            "GB('CommandReader').map(lambda x: calls).register(trigger='calls')\n")
    assert pyexec(admin, hook) == "OK"
    assert reader.get("allowed:1") == "one"
    assert admin.execute_command("RG.TRIGGER", "calls") == ["1"]
    # A key outside the user's patterns: the same refusal as without the hook, hook not run.
    assert error_of(reader, "GET", "secret") == NO_KEY
    assert admin.execute_command("RG.TRIGGER", "calls") == ["1"]
    assert admin.get("secret") == "s"


def test_a_wrapped_command_the_user_may_not_run_is_refused(acl_server):
    srv, admin, reader = acl_server
    before = error_of(reader, "SET", "allowed:1", "x")
    assert before == NO_SET
    assert pyexec(admin, "GB().foreach(lambda r: execute('INCR', 'fired')).register("
                         "prefix='allowed:*', commands=['set'], mode='sync')") == "OK"
    assert error_of(reader, "SET", "allowed:1", "x") == NO_SET
    assert admin.exists("allowed:1") == 0 and admin.exists("fired") == 0
    # The admin's own SET still goes through the wrapper.
    assert admin.set("allowed:1", "y")
    assert wait_for(lambda: admin.get("fired") == "1")


def test_a_wrapped_command_respects_maxmemory(acl_server):
    srv, admin, reader = acl_server
    assert pyexec(admin, "GB().foreach(lambda r: None).register(prefix='*', commands=['set'], mode='sync')") == "OK"
    admin.config_set("maxmemory", "1")
    try:
        assert "command not allowed when used memory > 'maxmemory'" in error_of(admin, "SET", "k", "v")
    finally:
        admin.config_set("maxmemory", "0")
    assert admin.exists("k") == 0


@pytest.fixture
def app_user(fresh_server):
    admin = fresh_server.client()
    admin.flushall()
    app = user_client(fresh_server, "app", "+@all ~app:*")
    return fresh_server, admin, app


def test_a_script_runs_with_its_creators_acl(app_user):
    srv, admin, app = app_user
    assert pyexec(app, "execute('SET', 'app:1', 'ok')") == [[], []] or admin.get("app:1") == "ok"
    assert admin.get("app:1") == "ok"
    err = error_of(app, "RG.PYEXECUTE", "execute('SET', 'other', 'x')")
    assert "NOPERM" in err or "No permissions" in err, err
    assert admin.exists("other") == 0


def test_a_registration_runs_as_the_user_who_registered_it(app_user):
    srv, admin, app = app_user
    script = ("GB().foreach(lambda r: execute('SET', 'audit:' + r['key'], '1'))"
              ".foreach(lambda r: execute('SET', 'app:seen', r['key'])).register(prefix='app:*', mode='sync')")
    assert pyexec(app, script) == "OK"
    admin.set("app:x", "1")  # the admin's write fires the app user's registration
    stats = lambda: as_dict(as_dict(admin.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    assert wait_for(lambda: stats()["numTriggered"] >= 1, 5)
    assert admin.exists("audit:app:x") == 0  # not the app user's key: refused
    assert stats()["numFailures"] >= 1 and "NOPERM" in str(stats()["lastError"]), stats()


def test_a_deleted_user_can_no_longer_act(app_user):
    srv, admin, app = app_user
    assert pyexec(app, "GB('CommandReader').map(lambda x: execute('SET', 'app:t', '1')).register(trigger='t')") == "OK"
    assert admin.execute_command("RG.TRIGGER", "t") == ["OK"]
    admin.execute_command("ACL", "DELUSER", "app")
    err = error_of(admin, "RG.TRIGGER", "t")
    assert "no longer exists" in err, err


def test_run_scripts_as_module_restores_redisgears_12(make_server):
    srv = make_server("RunScriptsAs", "module")
    admin = srv.client()
    app = user_client(srv, "app", "+@all ~app:*")
    assert pyexec(app, "execute('SET', 'other', 'x')") is not None
    assert admin.get("other") == "x"


def test_a_wrapped_write_on_a_replica_is_refused_as_readonly(make_server):
    primary = make_server()
    p = primary.client()
    assert pyexec(p, "GB().foreach(lambda r: None).register(prefix='*', commands=['set'], mode='sync')") == "OK"
    replica = make_server()
    rc = replica.client()
    rc.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
    assert wait_for(lambda: rc.info("replication")["master_link_status"] == "up", timeout=10)
    assert wait_for(lambda: len(rc.execute_command("RG.DUMPREGISTRATIONS")) == 1, timeout=10)
    assert "read only replica" in error_of(rc, "SET", "k", "v")
    assert rc.exists("k") == 0


def test_a_registration_keeps_its_user_after_a_restart(make_server):
    srv = make_server()
    admin = srv.client()
    app = user_client(srv, "app", "+@all ~app:*")
    script = "GB().foreach(lambda r: execute('SET', 'audit:' + r['key'], '1')).register(prefix='app:*', mode='sync')"
    assert pyexec(app, script) == "OK"
    admin.execute_command("DEBUG", "RELOAD")
    assert len(admin.execute_command("RG.DUMPREGISTRATIONS")) == 1
    admin.set("app:x", "1")
    assert admin.exists("audit:app:x") == 0  # still the app user's registration: refused
    data = as_dict(as_dict(admin.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    assert data["numFailures"] == 1 and "NOPERM" in data["lastError"], data
