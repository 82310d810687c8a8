"""Session start-up benchmark (`make bench`).

Measures, in one run on this machine:
  - RG.PYEXECUTE of a trivial script, end to end through a client (session create + run + free)
  - EVAL of a trivial Lua script through the same client (the client/protocol floor)
  - native CPython 3.13 (the recipe's build-python): _interpreters.create() + exec + destroy()
and prints p50/p99 and the ratios.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
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


def main():
    module = os.environ["WASMGEARS_MODULE"]
    native_python = os.environ["WASMGEARS_NATIVE_PYTHON"]
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp,
             "--logfile", os.path.join(tmp, "redis.log"), "--loadmodule", module])
        try:
            r = redis.Redis(port=port)
            for _ in range(300):
                try:
                    r.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.1)
            for _ in range(200):  # warm-up: page cache, pool slots
                r.execute_command("RG.PYEXECUTE", "x=1")
            wasm = timed(lambda: r.execute_command("RG.PYEXECUTE", "x=1"), ITERATIONS)
            lua = timed(lambda: r.execute_command("EVAL", "local x = 1", 0), ITERATIONS)
        finally:
            server.terminate()
            server.wait()
    raw = subprocess.run([native_python, "-c", NATIVE, str(ITERATIONS)], check=True, capture_output=True, text=True)
    native = [float(x) for x in raw.stdout.split()][50:]

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


if __name__ == "__main__":
    sys.exit(main())
