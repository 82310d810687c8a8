"""Real Redis Clusters on loopback for the tests: N masters (and replicas) started with the
module, joined with CLUSTER MEET, slots given with CLUSTER ADDSLOTSRANGE, ready once every node
says cluster_state:ok and knows every other node."""
import pytest
import redis

from conftest import RedisServer, free_port, wait_for

SLOTS = 16384


class ClusterNode(RedisServer):
    """A redis-server with cluster mode on; its bus port is a free port of its own (the default,
    port + 10000, can be taken or beyond 65535)."""

    bus_port = None

    def _argv(self):
        self.bus_port = self.bus_port or free_port()
        argv = super()._argv()
        at = argv.index("--loadmodule")
        return argv[:at] + ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "3000", "--cluster-port", str(self.bus_port)] + argv[at:]

    def node_id(self):
        return self.client().execute_command("CLUSTER", "MYID")

    def restart_empty(self):
        """Stops the node and starts it again on the same ports with no data (the tests save
        nothing: no RDB, no AOF), keeping only its nodes.conf: its id and its slots."""
        self.fixed_port = self.port
        self.stop()
        self._clients = []
        return self.start()


def slot_ranges(shards):
    """16384 slots split into `shards` contiguous ranges, as redis-cli --cluster create does."""
    size = SLOTS // shards
    return [(i * size, SLOTS - 1 if i == shards - 1 else (i + 1) * size - 1) for i in range(shards)]


class Cluster:
    def __init__(self, workdir, shards, replicas=0, module_args=(), redis_args=(), password=None,
                 master_args=None):
        """`master_args(i)`: module arguments of master i only (after `module_args`)."""
        self.masters, self.replicas, self.ranges = [], [], slot_ranges(shards)
        self.password = password
        if password is not None:
            redis_args = ("--requirepass", password, "--masterauth", password, *redis_args)
        for i in range(shards):
            own = tuple(module_args) + tuple(master_args(i) if master_args else ())
            self.masters.append(ClusterNode(workdir / f"m{i}", own, redis_args, password).start())
        for i in range(shards * replicas):
            self.replicas.append(ClusterNode(workdir / f"r{i}", module_args, redis_args, password).start())
        try:
            self._join(replicas)
        except Exception:
            self.stop()
            raise

    @property
    def nodes(self):
        return self.masters + self.replicas

    def _join(self, replicas):
        first = self.masters[0].client()
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        for node, (start, end) in zip(self.masters, self.ranges):
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", start, end)
        everyone = len(self.nodes)
        for node in self.nodes:
            c = node.client()
            known = lambda: len([line for line in c.execute_command("CLUSTER", "NODES").splitlines() if line]) == everyone
            if not wait_for(known, 30):
                raise RuntimeError(f"node {node.port} did not learn every node")
        for i, replica in enumerate(self.replicas):
            master = self.masters[i % len(self.masters)]
            replica.client().execute_command("CLUSTER", "REPLICATE", master.node_id())
        for node in self.nodes:
            if not wait_for(lambda: node.client().cluster("info")["cluster_state"] == "ok", 30):
                raise RuntimeError(f"node {node.port} did not reach cluster_state:ok\n" + node.log_tail())
        for replica in self.replicas:
            up = lambda: replica.client().info("replication").get("master_link_status") == "up"
            if not wait_for(up, 30):
                raise RuntimeError(f"replica {replica.port} did not sync")

    def client(self):
        """A cluster-aware client (follows MOVED)."""
        node = self.masters[0]
        return redis.RedisCluster(host="127.0.0.1", port=node.port, decode_responses=True, password=self.password)

    def stop(self):
        errors = [e for e in (n.stop() for n in self.nodes) if e]
        return "\n".join(errors) or None


@pytest.fixture
def cluster_of(tmp_path):
    """cluster_of(shards, replicas=0) -> a started Cluster, stopped after the test."""
    started = []

    def make(shards, replicas=0, **kwargs):
        cluster = Cluster(tmp_path / f"c{len(started)}", shards, replicas, **kwargs)
        started.append(cluster)
        return cluster

    yield make
    errors = [e for e in (c.stop() for c in started) if e]
    if errors:
        pytest.fail("\n".join(errors))
