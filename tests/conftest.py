"""Test harness for wasmgears: starts Debian's redis-server with the module loaded.

Fixtures
  server          module-scoped server with default module args
  limited_server  module-scoped server loaded with `SandboxTimeLimitMS 1000`
  make_server     function-scoped factory: make_server("Key", "Val", ...) -> started server
  fresh_server    function-scoped server with default module args
  servers         function-scoped factory: servers(name, *redis_args, module_args=()) -> started server
  r               client (decode_responses=True) of `server`, database flushed before the test

Helpers (import them with `from conftest import ...`)
  pyexec(client, script, *args)      RG.PYEXECUTE, returns the reply
  pyexec_err(client, script, *args)  RG.PYEXECUTE that must fail, returns str(error)
  wait_for(predicate, timeout)       poll until predicate() is truthy
  rss_kib(pid)                       VmRSS of a process in KiB
"""
import os
import shutil
import socket
import subprocess
import time

import pytest
import redis

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
MODULE_PATH = os.path.abspath(os.environ.get(
    "WASMGEARS_MODULE",
    os.path.join(os.path.dirname(__file__), "..", "target", "release", "libwasmgears.so")))
START_TIMEOUT = 30.0

# Put into redis-server's environment: a sandboxed script must never see it.
HOST_SECRET_VAR = "WASMGEARS_TEST_HOST_SECRET"
HOST_SECRET_VAL = "host-secret-4f2a9c"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_for(predicate, timeout=5.0, interval=0.02):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def pyexec(client, script, *args):
    return client.execute_command("RG.PYEXECUTE", script, *args)


def pyexec_err(client, script, *args):
    """Runs a script that must end in an error reply; returns the error text."""
    try:
        reply = client.execute_command("RG.PYEXECUTE", script, *args)
    except redis.exceptions.ResponseError as e:
        return str(e)
    pytest.fail(f"expected an error reply for {script!r}, got {reply!r}")


class RedisServer:
    def __init__(self, workdir, module_args=(), redis_args=(), password=None):
        self.workdir = str(workdir)
        self.password = password  # with `--requirepass`: every client of the tests logs in
        self.module_args = [str(a) for a in module_args]
        self.redis_args = [str(a) for a in redis_args]  # after the defaults: they override
        self.logfile = os.path.join(self.workdir, "redis.log")
        self.stderrfile = os.path.join(self.workdir, "stderr.log")
        self.port = None
        self.proc = None
        self._clients = []

    @property
    def pid(self):
        return self.proc.pid

    def _argv(self):
        return [REDIS_SERVER,
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
                "--dir", self.workdir, "--logfile", self.logfile,
                "--daemonize", "no", "--enable-debug-command", "yes", *self.redis_args,
                "--loadmodule", MODULE_PATH, *self.module_args]

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        env = dict(os.environ)
        env[HOST_SECRET_VAR] = HOST_SECRET_VAL
        for attempt in range(3):
            self.port = getattr(self, "fixed_port", None) or free_port()
            if os.path.exists(self.logfile):
                os.unlink(self.logfile)
            with open(self.stderrfile, "wb") as errf:
                # a file, not a pipe: a full pipe would block the server
                self.proc = subprocess.Popen(self._argv(), cwd=self.workdir, env=env,
                                             stdout=subprocess.DEVNULL, stderr=errf)
            deadline = time.monotonic() + START_TIMEOUT
            probe = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                                socket_connect_timeout=1, password=self.password)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if probe.ping():
                        probe.close()
                        return self
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    pass
                except redis.exceptions.BusyLoadingError:
                    pass
                time.sleep(0.05)
            probe.close()
            if self.proc.poll() is None:
                self._kill()
                pytest.fail(f"redis-server did not answer PING within {START_TIMEOUT:.0f} s\n"
                            + self.log_tail())
            stderr = self.stderr_text()
            tail = self.log_tail()
            if "Address already in use" in tail + stderr and attempt < 2:
                continue  # lost the race for the port: pick another one
            pytest.fail(f"redis-server exited early with code {self.proc.returncode} "
                        f"(module: {MODULE_PATH})\n{tail}\nstderr:\n{stderr[-4000:]}")
        pytest.fail("could not start redis-server")

    def client(self, **kw):
        opts = dict(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=60,
                    password=self.password)
        opts.update(kw)
        c = redis.Redis(**opts)
        self._clients.append(c)
        return c

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr_text(self):
        try:
            with open(self.stderrfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "---- redis.log (tail) ----\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, needle, timeout=5.0):
        return wait_for(lambda: needle in self.log_text(), timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _kill(self):
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self):
        """Stops the server; returns an error text if it had died on its own (a crash)."""
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return (f"redis-server died during the tests (exit code {self.proc.returncode})\n"
                    + self.log_tail(120) + "\nstderr:\n" + self.stderr_text()[-4000:])
        try:
            c = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                            socket_connect_timeout=2, password=self.password)
            c.shutdown(nosave=True)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()
        return None


def _start(workdir, module_args):
    if not os.path.exists(MODULE_PATH):
        pytest.fail(f"module not found: {MODULE_PATH} (build it or set WASMGEARS_MODULE)")
    return RedisServer(workdir, module_args).start()


def _finish(srv):
    err = srv.stop()
    if err:
        pytest.fail(err)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = _start(tmp_path_factory.mktemp("redis"), ())
    yield srv
    _finish(srv)


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    srv = _start(tmp_path_factory.mktemp("redis-limited"), ("SandboxTimeLimitMS", "1000"))
    yield srv
    _finish(srv)


@pytest.fixture
def make_server(tmp_path):
    started = []

    def make(*module_args):
        srv = _start(tmp_path / f"redis{len(started)}", module_args)
        started.append(srv)
        return srv

    yield make
    errors = [e for e in (s.stop() for s in started) if e]
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def servers(tmp_path):
    """servers(name, *redis_args, module_args=()) -> a started server with extra redis-server
    arguments (replicas: `"--replicaof", host, port`); all stopped after the test."""
    started = []

    def start(name, *redis_args, module_args=()):
        srv = RedisServer(tmp_path / name, module_args, redis_args).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def fresh_server(make_server):
    return make_server()


@pytest.fixture
def r(server):
    c = server.client()
    c.flushall()
    return c


@pytest.fixture
def clean(r):
    """`r`, and afterwards every registration dropped and the data flushed."""
    yield r
    for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
        r.execute_command("RG.UNREGISTER", entry[1])
    r.flushall()


def as_dict(flat):
    """A flat [name, value, ...] reply as a dict."""
    return dict(zip(flat[::2], flat[1::2]))


def pytest_report_header(config):
    exists = "found" if os.path.exists(MODULE_PATH) else "MISSING"
    return [f"wasmgears module: {MODULE_PATH} ({exists})",
            f"redis-server: {REDIS_SERVER} ({'found' if shutil.which(REDIS_SERVER) else 'MISSING'})"]
