"""The cluster as each shard sees it (issue #15, topology): RG.INFOCLUSTER in 1.2's shape
(src/cluster.c Cluster_GetClusterInfo), RG.HELLO, RG.REFRESHCLUSTER, ids `<node id>-<n>`,
ShardsIDReader and hashtag(), read from Redis's own CLUSTER SLOTS without any RG.REFRESHCLUSTER."""
from cluster_helper import cluster_of  # noqa: F401 (a fixture)
from conftest import as_dict, pyexec

STANDALONE = "0" * 40


def info_of(c):
    reply = c.execute_command("RG.INFOCLUSTER")
    assert reply[0] == "MyId" and reply[2] == "MyRunId" and len(reply) == 5
    return reply[1], reply[3], [as_dict(node) for node in reply[4]]


def test_infocluster_lists_every_master_in_1_2s_shape(cluster_of):
    cluster = cluster_of(3, replicas=1)
    ids = [m.node_id() for m in cluster.masters]
    for master in cluster.masters:
        c = master.client()
        my_id, run_id, nodes = info_of(c)
        assert my_id == master.node_id()
        assert [list(n) for n in nodes] == [["id", "ip", "port", "unixSocket", "runid", "minHslot",
                                              "maxHslot", "pendingMessages"]] * 3
        assert [n["id"] for n in nodes] == ids  # replicas are not shards
        assert [(n["minHslot"], n["maxHslot"]) for n in nodes] == cluster.ranges
        assert [(n["ip"], n["port"], n["unixSocket"]) for n in nodes] == \
            [("127.0.0.1", m.port, "None") for m in cluster.masters]
        # its own run id; a peer's once the link to it has greeted it (test_cluster_links.py)
        for n in nodes:
            assert n["runid"] == run_id if n["id"] == my_id else n["runid"] is None or len(n["runid"]) == 40
        assert all(isinstance(n["pendingMessages"], int) for n in nodes)
        assert len(run_id) == 40 and c.execute_command("RG.HELLO") == run_id
        assert c.execute_command("RG.REFRESHCLUSTER") == "OK"
        _, new_run_id, _ = info_of(c)
        assert new_run_id != run_id and c.execute_command("RG.HELLO") == new_run_id


def test_ids_shard_id_reader_and_hashtag_name_the_shard(cluster_of):
    cluster = cluster_of(2)
    for master, (start, _) in zip(cluster.masters, cluster.ranges):
        c = master.client()
        my_id = master.node_id()
        execution = pyexec(c, "GB('ShardsIDReader').run()", "UNBLOCKING")
        assert execution.startswith(my_id + "-")
        # async_local: this shard only (a distributed run reads every shard: test_cluster_runs.py)
        assert pyexec(c, "GB('ShardsIDReader').run(mode='async_local')") == [[my_id], []]
        [tag], errors = pyexec(c, "GB('ShardsIDReader').map(lambda x: hashtag()).run(mode='async_local')")
        assert errors == []
        # slot_table[minSlot]: the tag maps to this shard's first slot
        assert c.execute_command("CLUSTER", "KEYSLOT", "{%s}" % tag) == start
        assert pyexec(c, "GB('CommandReader').register(trigger='t%d')" % master.port) == "OK"
        # registered on every master (test_cluster_registrations.py), under this shard's id
        ids = [as_dict(entry)["id"] for entry in c.execute_command("RG.DUMPREGISTRATIONS")]
        assert [i for i in ids if i.startswith(my_id + "-")] and len(ids) == cluster.masters.index(master) + 1


def test_a_cluster_of_one_shard_is_no_cluster_mode(cluster_of):
    cluster = cluster_of(1)
    c = cluster.masters[0].client()
    assert c.execute_command("RG.INFOCLUSTER") == "no cluster mode"
    assert pyexec(c, "GB('ShardsIDReader').run()") == [["1"], []]
    assert pyexec(c, "GB('ShardsIDReader').map(lambda x: hashtag()).run()") == [["06S"], []]
    assert pyexec(c, "GB().run()", "UNBLOCKING").startswith(STANDALONE + "-")
    assert c.execute_command("RG.REFRESHCLUSTER") == "OK"


def test_standalone_answers_as_1_2(r):
    assert r.execute_command("RG.INFOCLUSTER") == "no cluster mode"
    assert r.execute_command("RG.REFRESHCLUSTER") == "OK"
    assert len(r.execute_command("RG.HELLO")) == 40
    assert pyexec(r, "GB('ShardsIDReader').map(lambda x: hashtag()).run()") == [["06S"], []]
