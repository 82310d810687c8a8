"""The links between shards (issue #15): each master connects to every other one, greets it with
RG.HELLO (RG.INFOCLUSTER then shows the peer's run id), and sends RG.INNERMSGCOMMAND messages
that are acknowledged, run once, kept while a peer does not answer and sent again when it does.
RedisGears 1.2: src/cluster.c; RG.NETWORKTEST: src/module.c."""
import os
import signal

import pytest
import redis

from cluster_helper import cluster_of  # noqa: F401 (a fixture)
from conftest import as_dict, wait_for


def peers_seen(c):
    """{peer id: (its run id as this node knows it, pending messages)} from RG.INFOCLUSTER."""
    reply = c.execute_command("RG.INFOCLUSTER")
    my_id = reply[1]
    nodes = [as_dict(n) for n in reply[4]]
    return {n["id"]: (n["runid"], n["pendingMessages"]) for n in nodes if n["id"] != my_id}


def greeted(cluster):
    """Every master knows every peer's current run id, and nothing waits."""
    hello = {m.node_id(): m.client().execute_command("RG.HELLO") for m in cluster.masters}
    for m in cluster.masters:
        expected = {i: (r, 0) for i, r in hello.items() if i != m.node_id()}
        if peers_seen(m.client()) != expected:
            return False
    return True


def test_every_master_greets_every_peer_and_networktest_reaches_them(cluster_of):
    cluster = cluster_of(3)
    # No RG.REFRESHCLUSTER needed: reading the topology (here by RG.INFOCLUSTER) starts the links.
    assert wait_for(lambda: greeted(cluster), 15), [peers_seen(m.client()) for m in cluster.masters]
    sender = cluster.masters[0]
    assert sender.client().execute_command("RG.NETWORKTEST") == "OK"
    for peer in cluster.masters[1:]:
        assert peer.wait_for_log(f"Got test network message from {sender.node_id()}: test", 10), peer.log_tail()
    assert "Got test network message" not in sender.log_text()  # not sent to itself


def test_a_refresh_gives_a_new_run_id_that_peers_learn_within_a_second(cluster_of):
    cluster = cluster_of(2)
    a, b = cluster.masters
    assert wait_for(lambda: greeted(cluster), 15)
    old = a.client().execute_command("RG.HELLO")
    assert a.client().execute_command("RG.REFRESHCLUSTER") == "OK"
    new = a.client().execute_command("RG.HELLO")
    assert new != old
    # An idle link greets its peer every second (1.2 noticed only when it next sent): b sees
    # the new run id without any message; a's own links restarted with it.
    assert wait_for(lambda: peers_seen(b.client())[a.node_id()][0] == new, 5)
    assert a.client().execute_command("RG.NETWORKTEST") == "OK"
    assert b.wait_for_log("Got test network message", 10)


def test_a_message_runs_once_and_bad_ones_get_1_2s_errors(cluster_of):
    cluster = cluster_of(2)
    c = cluster.masters[1].client()
    fake = "f" * 40
    args = ("RG.INNERMSGCOMMAND", fake, "r" * 40, "RG_NetworkTest", "once")
    assert c.execute_command(*args, 0) == "OK"
    assert c.execute_command(*args, 0) == "duplicate message ignored"
    assert c.execute_command(*args, 1) == "OK"
    assert c.execute_command("RG.INNERMSGCOMMAND", fake, "s" * 40, "RG_NetworkTest", "again", 0) == "OK"
    assert cluster.masters[1].log_text().count(f"Got test network message from {fake}") == 3
    with pytest.raises(redis.ResponseError, match="bad msg id given"):
        c.execute_command(*args, "x")
    with pytest.raises(redis.ResponseError, match="can not find the callback requested"):
        c.execute_command("RG.INNERMSGCOMMAND", fake, "r" * 40, "NoSuchReceiver", "x", 5)
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        c.execute_command("RG.INNERMSGCOMMAND", fake, "r" * 40, "RG_NetworkTest", "x")
    # Only the links' user (masteruser, here unset: default) may send one.
    c.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all")
    app = cluster.masters[1].client(username="app", password="pw")
    with pytest.raises(redis.ResponseError, match="is for the links between shards"):
        app.execute_command(*args, 7)
    assert cluster.masters[1].log_text().count(f"Got test network message from {fake}") == 3


def test_messages_wait_for_a_frozen_peer_and_are_delivered_when_it_answers(cluster_of):
    cluster = cluster_of(2)
    a, b = cluster.masters
    assert wait_for(lambda: greeted(cluster), 15)
    b_id = b.node_id()  # asked before b is frozen
    os.kill(b.pid, signal.SIGSTOP)
    try:
        for _ in range(3):
            assert a.client().execute_command("RG.NETWORKTEST") == "OK"
        waiting = lambda: peers_seen(a.client())[b_id][1]
        assert wait_for(lambda: waiting() >= 1, 5), peers_seen(a.client())
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert wait_for(lambda: peers_seen(a.client())[b_id][1] == 0, 30), peers_seen(a.client())
    # Each once, although the first batch may have been written twice (after the read timed out).
    assert wait_for(lambda: b.log_text().count(f"Got test network message from {a.node_id()}") == 3, 10), \
        b.log_tail()


def test_links_log_in_with_masterauth(cluster_of):
    cluster = cluster_of(2, password="s3cret-pass")
    assert wait_for(lambda: greeted(cluster), 15), [peers_seen(m.client()) for m in cluster.masters]
    a, b = cluster.masters
    assert a.client().execute_command("RG.NETWORKTEST") == "OK"
    assert b.wait_for_log("Got test network message", 10)
