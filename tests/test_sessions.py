"""Sessions by ID: UPGRADE, REPLACE_WITH, DESCRIPTION, RG.PYDUMPSESSIONS (spec §1.2, §4)."""
import threading
import time

import pytest
import redis

from conftest import as_dict, pyexec, pyexec_err, wait_for

V1 = "GB('CommandReader').map(lambda x: 'v1').register(trigger='ver')"
V2 = "GB('CommandReader').map(lambda x: 'v2').register(trigger='ver')"


def sessions(r, *args):
    return [as_dict(e) for e in r.execute_command("RG.PYDUMPSESSIONS", *args)]


def test_id_description_and_dump(clean):
    r = clean
    assert pyexec(r, V1, "ID", "app", "DESCRIPTION", "my app") == "OK"
    [s] = sessions(r)
    assert s == {"ID": "app", "sessionDescription": "my app", "refCount": 1, "linked": "primary",
                 "dead": "false", "requirementInstallationNeeded": 0, "requirements": [],
                 "registrations": [r.execute_command("RG.DUMPREGISTRATIONS")[0][1]]}
    [verbose] = sessions(r, "VERBOSE")
    [reg] = verbose["registrations"]
    assert len(reg) == 10 and "PD" not in reg  # registrations without the PD pair
    assert sessions(r, "SESSIONS", "app")[0]["ID"] == "app"
    assert r.execute_command("RG.PYDUMPSESSIONS", "SESSIONS", "nope") == ["Session nope does not exists"]
    with pytest.raises(redis.ResponseError, match="Unknown option bogus"):
        r.execute_command("RG.PYDUMPSESSIONS", "bogus")
    pd = r.execute_command("RG.DUMPREGISTRATIONS")[0][9]
    assert "'sessionName':'app'" in pd and "'sessionDescription':'my app'" in pd


def test_existing_id_needs_upgrade(clean):
    r = clean
    assert pyexec(r, V1, "ID", "app") == "OK"
    assert pyexec_err(r, V2, "ID", "app") == "Session app already exists"
    assert r.execute_command("RG.TRIGGER", "ver") == ["v1"]
    assert pyexec(r, V2, "ID", "app", "UPGRADE") == "OK"
    assert r.execute_command("RG.TRIGGER", "ver") == ["v2"]  # same trigger name: no conflict
    assert len(r.execute_command("RG.DUMPREGISTRATIONS")) == 1
    [s] = sessions(r)
    assert s["ID"] == "app"
    assert wait_for(lambda: r.info("rg")["rg_nsessions"] == 1)  # the old one is freed


def test_failing_upgrade_keeps_the_old_session_serving(clean):
    r = clean
    assert pyexec(r, V1, "ID", "app") == "OK"
    err = pyexec_err(r, V2 + "\n1/0", "ID", "app", "UPGRADE")
    assert "ZeroDivisionError" in err
    assert r.execute_command("RG.TRIGGER", "ver") == ["v1"]
    assert [s["ID"] for s in sessions(r)] == ["app"]


def test_upgrade_of_a_new_id_creates_it(clean):
    r = clean
    assert pyexec(r, V1, "ID", "fresh", "UPGRADE") == "OK"
    assert [s["ID"] for s in sessions(r)] == ["fresh"]


def test_replace_with(clean):
    r = clean
    assert pyexec(r, V1, "ID", "old") == "OK"
    assert pyexec(r, "GB('CommandReader').register(trigger='other')", "ID", "other") == "OK"
    assert pyexec_err(r, V2, "ID", "new", "REPLACE_WITH", "nosuch") == \
        "Can not replace with nosuch, session does not exists."
    assert pyexec_err(r, V2, "ID", "other", "REPLACE_WITH", "old") == \
        "Can not replace an existing session other with old"
    assert pyexec(r, V2, "ID", "new", "REPLACE_WITH", "old") == "OK"
    assert r.execute_command("RG.TRIGGER", "ver") == ["v2"]
    assert sorted(s["ID"] for s in sessions(r)) == ["new", "other"]


def test_upgrade_while_the_old_session_runs(clean):
    r = clean
    slow = ("import time\n"
            "def slow(x):\n"
            "    time.sleep(1)\n"
            "    return 'old finished'\n"
            "GB('CommandReader').map(slow).register(trigger='slow')")
    assert pyexec(r, slow, "ID", "app") == "OK"
    out = {}
    other = redis.Redis(port=r.connection_pool.connection_kwargs["port"], decode_responses=True)
    t = threading.Thread(target=lambda: out.setdefault("r", other.execute_command("RG.TRIGGER", "slow")))
    t.start()
    time.sleep(0.3)
    assert pyexec(r, V2, "ID", "app", "UPGRADE") == "OK"
    [dead] = sessions(r, "DEAD")
    assert dead["ID"] == "app" and dead["dead"] == "true" and dead["linked"] == "None"
    t.join()
    assert out["r"] == ["old finished"]
    assert wait_for(lambda: sessions(r, "DEAD") == [])
    assert r.execute_command("RG.TRIGGER", "ver") == ["v2"]


def test_id_errors(clean):
    r = clean
    assert pyexec_err(r, "x=1", "ID") == "ID is missing"
    assert "ID must be compose of" in pyexec_err(r, "x=1", "ID", "bad id")
    assert pyexec_err(r, "x=1", "REPLACE_WITH") == "REPLACE_WITH is missing"
