"""Benchmarks (`make bench`), every baseline measured in the same run on this machine.

1. Session start-up: RG.PYEXECUTE of a trivial script end to end (session create + run +
   free) vs native CPython 3.13 (the recipe's build-python) _interpreters create/exec/destroy,
   and vs EVAL of a trivial Lua script (the client/protocol floor).
2. A flow over 100k string keys: GB().map(len of value).aggregate(sum).run() vs the same work
   in a Lua EVAL script (SCAN + GET + strlen) and in native CPython 3.13 with redis-py pipelines.
3. Two sessions' CPU-bound executions in parallel vs one after the other.
4. Reacting to writes (redis-benchmark, 50 clients, unpipelined and with -P 16): SET with a
   `sync` KeysReader registration doing one execute() vs the same work as a Lua FCALL vs plain
   SET; RG.TRIGGER of a trivial flow (sync and async) vs FCALL of a trivial function.
5. A cluster of 3 masters (BENCH_CLUSTER_KEYS keys, default 1M, DEBUG POPULATE on each) vs one
   node with the same number of keys: a distributed count() and countby(), and the round trip
   of a trivial distributed run (GB('ShardsIDReader').run()) vs the same run on one node.
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import redis

ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "2000"))
NATIVE = r"""
import _interpreters, time, sys
n = int(sys.argv[1]); out = []
for _ in range(n):
    t = time.perf_counter()
    i = _interpreters.create()
    _interpreters.exec(i, "x=1")
    _interpreters.destroy(i)
    out.append(time.perf_counter() - t)
print(" ".join(repr(x) for x in out))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return statistics.median(samples) * 1e3, pick(0.99) * 1e3


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


KEYS = int(os.environ.get("BENCH_KEYS", "100000"))
FLOW = "GB().map(lambda r: len(r['value'])).aggregate(0, lambda a, r: a + r, lambda a, r: a + r).run()"
LUA_FLOW = """
local cursor, n = '0', 0
repeat
  local res = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = res[1]
  for _, k in ipairs(res[2]) do
    n = n + string.len(redis.call('GET', k))
  end
until cursor == '0'
return n
"""
NATIVE_FLOW = r"""
import sys, time, redis
r = redis.Redis(port=int(sys.argv[1]))
best = None
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    n = 0
    cursor = 0
    while True:
        cursor, keys = r.scan(cursor, count=1000)
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.get(k)
        n += sum(map(len, pipe.execute()))
        if cursor == 0:
            break
    assert n == int(sys.argv[3]), n
    elapsed = time.perf_counter() - t
    best = elapsed if best is None else min(best, elapsed)
print(best)
"""
SPIN = "GB('PythonReader').map(lambda x: sum(range(x))).run(lambda: (x for x in [3000000]))"


def best_of(fn, n):
    return min(timed(fn, n))


def flow_bench(r, port, native_python):
    r.execute_command("DEBUG", "POPULATE", KEYS, "key", 10)  # values of 10 bytes
    total = KEYS * 10
    reply = r.execute_command("RG.PYEXECUTE", FLOW)
    assert reply[0] == [str(total).encode()], reply
    assert r.execute_command("EVAL", LUA_FLOW, 0) == total
    wasm = best_of(lambda: r.execute_command("RG.PYEXECUTE", FLOW), 5)
    lua = best_of(lambda: r.execute_command("EVAL", LUA_FLOW, 0), 5)
    site = os.environ.get("WASMGEARS_VENV_SITE", "")
    out = subprocess.run([native_python, "-c", NATIVE_FLOW, str(port), "5", str(total)], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": site})
    native = float(out.stdout)
    print(f"\nflow over {KEYS} keys (best of 5):")
    print(f"  RG.PYEXECUTE {FLOW!r}: {wasm * 1e3:9.1f} ms")
    print(f"  Lua EVAL (SCAN + GET + strlen, same work):       {lua * 1e3:9.1f} ms   wasm/Lua = {wasm / lua:.2f}x")
    print(f"  native CPython 3.13 + redis-py pipelines:        {native * 1e3:9.1f} ms   wasm/native = {wasm / native:.2f}x")


def parallel_bench(port):
    clients = [redis.Redis(port=port) for _ in range(2)]
    for c in clients:
        c.execute_command("RG.PYEXECUTE", SPIN)
    t = time.perf_counter()
    for c in clients:
        c.execute_command("RG.PYEXECUTE", SPIN)
    sequential = time.perf_counter() - t
    threads = [threading.Thread(target=c.execute_command, args=("RG.PYEXECUTE", SPIN)) for c in clients]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    parallel = time.perf_counter() - t
    print(f"\ntwo sessions, CPU-bound flow each (sum(range(3e6))):")
    print(f"  one after the other: {sequential * 1e3:8.1f} ms   in parallel: {parallel * 1e3:8.1f} ms"
          f"   speed-up {sequential / parallel:.2f}x (2 cores)")


LIBRARY = """#!lua name=benchlib
redis.register_function('setinc', function(keys, args)
  redis.call('set', keys[1], args[1])
  return redis.call('incr', 'lua_counter')
end)
redis.register_function('noop', function(keys, args) return 1 end)
"""
REACTIVE = """
GB().foreach(lambda r: execute('incr', 'gears_counter')).register(prefix='g:*', eventTypes=['set'], mode='sync')
GB('CommandReader').register(trigger='noop_sync', mode='sync')
GB('CommandReader').register(trigger='noop')
import asyncio
async def yield_once(x):
    await asyncio.sleep(0)
    return x
GB('CommandReader').map(yield_once).register(trigger='noop_async')
"""
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "100000"))
PIPELINED_REQUESTS = int(os.environ.get("BENCH_PIPELINED_REQUESTS", "500000"))


def requests_per_second(port, *command, pipeline=1):
    n = REQUESTS if pipeline == 1 else PIPELINED_REQUESTS
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(n), "-c", "50", "-P", str(pipeline),
                          "-r", "100000", "--csv", *command], check=True, capture_output=True, text=True).stdout
    # "test","rps","avg_latency_ms",...: the last line is the command's
    return float(out.strip().splitlines()[-1].split(",")[1].strip('"'))


def reactive_bench(r, port):
    r.execute_command("FUNCTION", "LOAD", "REPLACE", LIBRARY)
    r.execute_command("RG.PYEXECUTE", REACTIVE)
    for pipeline in (1, 16):
        before = int(r.get("gears_counter") or 0)
        rps = lambda *command: requests_per_second(port, *command, pipeline=pipeline)
        plain = rps("SET", "p:__rand_int__", "v")
        gears = rps("SET", "g:__rand_int__", "v")
        lua = rps("FCALL", "setinc", "1", "l:__rand_int__", "v")
        sent = REQUESTS if pipeline == 1 else PIPELINED_REQUESTS
        assert int(r.get("gears_counter")) - before == sent, "every SET must have run the sync registration once"
        trig_sync = rps("RG.TRIGGER", "noop_sync")
        trig = rps("RG.TRIGGER", "noop")
        trig_async = rps("RG.TRIGGER", "noop_async")
        noop = rps("FCALL", "noop", "0")
        print(f"\nreacting to writes (redis-benchmark -n {sent} -c 50 -P {pipeline}), requests per second:")
        print(f"  plain SET:                                      {plain:10.0f}")
        print(f"  SET + sync KeysReader registration (1 execute): {gears:10.0f}   "
              f"vs FCALL (SET + INCR in Lua) {lua:10.0f}   gears/Lua = {gears / lua:.2f}x   "
              f"gears/plain = {gears / plain:.2f}x")
        print(f"  RG.TRIGGER trivial flow (sync, main thread):    {trig_sync:10.0f}   "
              f"vs FCALL trivial {noop:10.0f}   gears/Lua = {trig_sync / noop:.2f}x")
        print(f"  RG.TRIGGER trivial flow (async, worker):        {trig:10.0f}   gears/Lua = {trig / noop:.2f}x")
        print(f"  RG.TRIGGER flow with an async def step that     {trig_async:10.0f}   gears/Lua = {trig_async / noop:.2f}x"
              f"   async/plain trigger = {trig_async / trig:.2f}x")
        print("    awaits asyncio.sleep(0) (the record waits once)")


CLUSTER_KEYS = int(os.environ.get("BENCH_CLUSTER_KEYS", "1000000"))
COUNT = "GB().count().run()"
COUNTBY = "GB().countby(lambda r: r['key'][-1]).run()"
ROUND_TRIP = "GB('ShardsIDReader').run()"


def start_server(module, tmp, name, cluster=False):
    port, bus = free_port(), free_port()
    workdir = os.path.join(tmp, name)
    os.makedirs(workdir)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir,
            "--logfile", os.path.join(workdir, "redis.log"), "--enable-debug-command", "yes"]
    if cluster:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus)]
    server = subprocess.Popen(argv + ["--loadmodule", module])
    r = redis.Redis(port=port, socket_timeout=600)
    for _ in range(300):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    return server, r, port, bus


def wait_until(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not form")
        time.sleep(0.1)


def cluster_bench(module):
    with tempfile.TemporaryDirectory() as tmp:
        servers = []
        try:
            nodes = [start_server(module, tmp, f"m{i}", cluster=True) for i in range(3)]
            servers += [n[0] for n in nodes]
            clients = [n[1] for n in nodes]
            for _, _, port, bus in nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
            size = 16384 // 3
            for i, c in enumerate(clients):
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * size, 16383 if i == 2 else (i + 1) * size - 1)
            for c in clients:
                wait_until(lambda: c.execute_command("CLUSTER", "INFO").decode().find("cluster_state:ok") >= 0)
                wait_until(lambda: len(c.execute_command("CLUSTER", "NODES").decode().strip().splitlines()) == 3)
            single_server, single, _, _ = start_server(module, tmp, "single")
            servers.append(single_server)
            # Each shard gets a third of the keys (names of its own: DEBUG POPULATE ignores slots,
            # which does not matter to a flow reading every key of every shard).
            for i, c in enumerate(clients):
                c.execute_command("DEBUG", "POPULATE", CLUSTER_KEYS // 3 + (CLUSTER_KEYS % 3 if i == 0 else 0), f"s{i}key")
            single.execute_command("DEBUG", "POPULATE", CLUSTER_KEYS, "key")
            assert clients[1].execute_command("RG.PYEXECUTE", COUNT)[0] == [str(CLUSTER_KEYS).encode()]
            assert single.execute_command("RG.PYEXECUTE", COUNT)[0] == [str(CLUSTER_KEYS).encode()]
            print(f"\ncluster of 3 masters vs 1 node, {CLUSTER_KEYS} keys (best of 3):")
            for name, flow in (("count()", COUNT), ("countby()", COUNTBY)):
                on3 = best_of(lambda: clients[0].execute_command("RG.PYEXECUTE", flow), 3)
                on1 = best_of(lambda: single.execute_command("RG.PYEXECUTE", flow), 3)
                print(f"  {name:10s} 3 shards {on3 * 1e3:9.1f} ms   1 node {on1 * 1e3:9.1f} ms   3 shards/1 node = {on3 / on1:.2f}x")
            for _ in range(50):
                clients[0].execute_command("RG.PYEXECUTE", ROUND_TRIP)
            trip3 = timed(lambda: clients[0].execute_command("RG.PYEXECUTE", ROUND_TRIP), 300)
            trip1 = timed(lambda: single.execute_command("RG.PYEXECUTE", ROUND_TRIP), 300)
            (d50, d99), (l50, l99) = percentiles(trip3), percentiles(trip1)
            print(f"  {ROUND_TRIP!r}: 3 shards p50 {d50:.3f} ms p99 {d99:.3f} ms;"
                  f" 1 node p50 {l50:.3f} ms p99 {l99:.3f} ms; distributed/local p50 = {d50 / l50:.2f}x")
        finally:
            for server in servers:
                server.terminate()
                server.wait()


def main():
    module = os.environ["WASMGEARS_MODULE"]
    native_python = os.environ["WASMGEARS_NATIVE_PYTHON"]
    with tempfile.TemporaryDirectory() as tmp:
        server, r, port, _ = start_server(module, tmp, "single")
        try:
            for _ in range(200):  # warm-up: page cache, pool slots
                r.execute_command("RG.PYEXECUTE", "x=1")
            wasm = timed(lambda: r.execute_command("RG.PYEXECUTE", "x=1"), ITERATIONS)
            lua = timed(lambda: r.execute_command("EVAL", "local x = 1", 0), ITERATIONS)
            flow_bench(r, port, native_python)
            parallel_bench(port)
            reactive_bench(r, port)
        finally:
            server.terminate()
            server.wait()
    raw = subprocess.run([native_python, "-c", NATIVE, str(ITERATIONS)], check=True, capture_output=True, text=True)
    native = [float(x) for x in raw.stdout.split()]
    native = native[min(50, len(native) // 4):]  # the first ones warm up

    rows = [("RG.PYEXECUTE 'x=1' (wasm session, via client)", wasm),
            ("EVAL 'local x = 1' (Lua, via client)", lua),
            ("native 3.13 _interpreters create+exec+destroy (in-process)", native)]
    print(f"iterations: {ITERATIONS}")
    for name, samples in rows:
        p50, p99 = percentiles(samples)
        print(f"{name:62s} p50 {p50:8.3f} ms   p99 {p99:8.3f} ms")
    w50, w99 = percentiles(wasm)
    n50, n99 = percentiles(native)
    l50, _ = percentiles(lua)
    print(f"ratio native/wasm: p50 {n50 / w50:.1f}x  p99 {n99 / w99:.1f}x  (>1: a wasm session is faster)")
    print(f"ratio wasm/Lua EVAL: p50 {w50 / l50:.1f}x")
    if os.environ.get("BENCH_CLUSTER", "1") != "0":
        cluster_bench(module)


if __name__ == "__main__":
    sys.exit(main())
