"""Fixtures that run the real daskgate binary for the e2e tests.

Each test gets its own gateway process (free port, temporary data dir),
with this venv's bin directory first on PATH so clusters run the real
`dask scheduler` / `dask worker` with the dask_gateway preload.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

BIN = os.environ.get("DASKGATE_BIN") or shutil.which("daskgate")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """A daskgate process; restartable on the same port and data dir."""

    def __init__(self, tmp_path, config):
        self.dir = tmp_path
        self.port = free_port()
        self.config = dict(config)
        self.config.setdefault("address", f"127.0.0.1:{self.port}")
        self.config.setdefault("data_dir", str(tmp_path / "data"))
        self.config.setdefault("log", {"level": "debug"})
        self.config_path = tmp_path / "daskgate.yaml"
        self.config_path.write_text(json.dumps(self.config))  # JSON is YAML
        prefix = self.config.get("prefix", "")
        self.address = f"http://127.0.0.1:{self.port}{prefix}".rstrip("/")
        self.proc = None
        self.log_path = tmp_path / "gateway.log"

    def start(self):
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daskgate exited:\n" + self.log_path.read_text())
            try:
                urllib.request.urlopen(self.address + "/api/health", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daskgate did not become healthy:\n" + self.log_path.read_text())

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        return self.log_path.read_text()


@pytest.fixture
def gateway_factory(tmp_path):
    if not BIN:
        pytest.fail("set DASKGATE_BIN to the daskgate binary (make test does)")
    started = []

    def make(config=None, start=True):
        gw = Gateway(tmp_path, config or {})
        started.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in started:
        gw.stop()


def wait_for(pred, timeout=30, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(autouse=True)
def no_gc_during_test():
    """dask_gateway.Gateway.__del__ calls close(), which blocks on its event
    loop; if the garbage collector runs it inside another Gateway's loop
    thread, that loop deadlocks. Collect only between tests."""
    import gc

    gc.disable()
    yield
    gc.enable()
    gc.collect()


def hub_client(hub, token, prefix="/services/dask-gateway"):
    """The client as a notebook in the hub has it: API through the hub's proxy
    under the gateway's prefix, scheduler TLS through the gateway's own port
    (hub.gateway, set by the module's fixture)."""
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    return Gateway(f"{hub.url}{prefix}", proxy_address=f"gateway://127.0.0.1:{hub.gateway.port}",
                   auth=JupyterHubAuth(api_token=token))


def one_worker(cluster):
    """Scale to one worker, wait for it, and return (client, worker info)."""
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=60)
    (worker,) = client.scheduler_info()["workers"].values()
    return client, worker


def host_pid(cluster_name, inner_pid, pidns):
    """The pid, as this test sees it, of a process of cluster_name that calls itself
    inner_pid in pid namespace pidns: sandboxed processes have namespaces of their own."""
    from pathlib import Path

    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [pid])
        if int(nspid[-1]) == inner_pid and f"DASK_GATEWAY_CLUSTER_NAME={cluster_name}".encode() in env \
                and os.readlink(f"/proc/{pid}/ns/pid") == pidns:
            return int(pid)
    raise AssertionError(f"no process {inner_pid} of cluster {cluster_name}")
