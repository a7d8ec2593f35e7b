"""A restart with no failed request: the listening socket outlives the
gateway process (systemd socket activation, LISTEN_FDS), clusters are
re-adopted (stop_clusters_on_shutdown: false), and a client hammers the
API throughout."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from dask_gateway import BasicAuth, Gateway

from conftest import BIN


def test_restart_on_a_held_socket_fails_no_request(tmp_path):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1024)
    port = holder.getsockname()[1]
    config = tmp_path / "daskgate.yaml"
    config.write_text(json.dumps({
        "address": f"127.0.0.1:{port}", "data_dir": str(tmp_path / "data"), "log": {"level": "debug"},
        "auth": {"type": "simple", "password": "pw"},
        "backend": {"stop_clusters_on_shutdown": False},
        "shutdown_delay": "1s", "shutdown_timeout": "3s",
    }))
    log = open(tmp_path / "gateway.log", "a")
    venv_bin = os.path.dirname(sys.executable)

    def start():
        # As systemd does: the socket at fd 3, LISTEN_FDS and LISTEN_PID.
        def child():
            os.dup2(holder.fileno(), 3)
            os.environ["LISTEN_FDS"] = "1"
            os.environ["LISTEN_PID"] = str(os.getpid())
            os.environ["PATH"] = venv_bin + os.pathsep + os.environ["PATH"]
        return subprocess.Popen([BIN, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                pass_fds=(3,), preexec_fn=child, start_new_session=True)

    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Basic YWxpY2U6cHc="}  # alice:pw

    def get(path, timeout=30):
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=auth), timeout=timeout) as r:
            return r.status, r.read()

    first = start()
    second = None
    try:
        deadline = time.time() + 20
        while True:
            try:
                get("/api/health", timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        with Gateway(base, auth=BasicAuth("alice", "pw")) as gw:
            cluster = gw.new_cluster()
            cluster.scale(1)
            client = cluster.get_client()
            client.wait_for_workers(1, timeout=60)
            assert client.submit(lambda x: x + 1, 1).result() == 2

            results = {"ok": 0, "failed": [], "slowest": 0.0}
            stop = threading.Event()

            def hammer():
                while not stop.is_set():
                    t0 = time.time()
                    try:
                        status, body = get("/api/v1/clusters/")
                        assert status == 200 and cluster.name.encode() in body
                        results["ok"] += 1
                    except Exception as e:  # noqa: BLE001 - every failure counts
                        results["failed"].append(f"{time.time() - t0:.3f}s after sending, at {time.time():.3f}: {e!r}")
                    results["slowest"] = max(results["slowest"], time.time() - t0)

            threads = [threading.Thread(target=hammer) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(1)
            # SIGTERM: for shutdown_delay the old process still serves the API,
            # while its health says it is draining.
            t_sigterm = time.time()
            first.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert get("/api/v1/clusters/", timeout=5)[0] == 200
            try:
                get("/api/health", timeout=5)
                draining = False
            except urllib.error.HTTPError as e:
                draining = e.code == 503
            assert draining, "health did not report draining"
            t_stop = time.time()
            print(f"SIGTERM at {t_sigterm:.3f}")
            first.wait(30)
            gap_start = time.time()
            second = start()  # what systemctl restart does
            time.sleep(3)
            stop.set()
            for t in threads:
                t.join()
            print(f"restart: old process exited {gap_start - t_stop:.2f}s after SIGTERM; "
                  f"{results['ok']} requests, {len(results['failed'])} failed, slowest {results['slowest']:.2f}s")
            assert results["failed"] == [], results["failed"][:5]
            assert results["ok"] > 50
            # The cluster was re-adopted, and the connected client computes on
            # through the new process.
            assert gw.get_cluster(cluster.name).status.name == "RUNNING"
            assert client.submit(lambda x: x + 2, 1).result(timeout=60) == 3
            client.close()
            cluster.shutdown()
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        holder.close()
        # Clusters outlive their gateway here (stop_clusters_on_shutdown:
        # false): end whatever a failed run left behind.
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and str(tmp_path).encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
