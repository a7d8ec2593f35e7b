"""The unmodified dask-gateway client against daskgate, end to end."""

import os
import signal
import urllib.request

import aiohttp
import pytest
from dask_gateway import BasicAuth, Gateway, GatewayClusterError, GatewayWarning

from conftest import host_pid, one_worker, wait_for


def connect(gw, user="alice", password="pw"):
    return Gateway(gw.address, auth=BasicAuth(user, password))


def test_readme_snippet(gateway_factory):
    gw = gateway_factory()
    with connect(gw) as g:
        opts = g.cluster_options()
        cluster = g.new_cluster(opts)
        cluster.scale(2)
        client = cluster.get_client()
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        client.wait_for_workers(2, timeout=60)
        assert len(client.scheduler_info()["workers"]) == 2
        cluster.adapt(minimum=0, maximum=3)
        client.close()
        cluster.shutdown()
        assert g.list_clusters() == []
        stopped = wait_for(lambda: g.list_clusters(status=["stopped"]), what="STOPPED")
        assert [c.name for c in stopped] == [cluster.name]


OPTION_FIELDS = [
    {"field": "worker_cores", "type": "int", "label": "Worker Cores", "default": 1, "min": 1, "max": 4},
    {"field": "size", "type": "select", "target": "worker_memory", "default": "small",
     "options": [{"key": "small", "value": "1 G"}, {"key": "large", "value": "1.5 G"}]},
    {"field": "environment", "type": "mapping"},
    {"field": "idle_timeout", "type": "float", "default": 3600, "min": 0},
    {"field": "keep_logs", "type": "bool"},
    {"field": "queue", "type": "string", "default": "default"},
]


def test_every_option_type_reaches_the_processes(gateway_factory):
    gw = gateway_factory({"options": {"fields": OPTION_FIELDS}})
    with connect(gw) as g:
        opts = g.cluster_options()
        assert list(opts) == ["worker_cores", "size", "environment", "idle_timeout", "keep_logs", "queue"]
        assert opts.worker_cores == 1 and opts.size == "small" and opts.queue == "default"
        opts.worker_cores = 2
        opts.size = "large"
        opts.environment = {"DG_TEST_VAR": "hello"}
        opts.idle_timeout = 1800.5
        opts.keep_logs = True
        opts.queue = "fast"
        with g.new_cluster(opts, shutdown_on_close=True) as cluster:
            report = g.get_cluster(cluster.name)
            assert report.options == {"worker_cores": 2, "size": "large", "environment": {"DG_TEST_VAR": "hello"},
                                      "idle_timeout": 1800.5, "keep_logs": True, "queue": "fast"}
            client, worker = one_worker(cluster)
            assert worker["nthreads"] == 2                       # worker_cores -> --nthreads
            assert worker["memory_limit"] == int(1.5 * 2**30)    # select value -> worker_memory
            env = client.run(lambda: os.environ.get("DG_TEST_VAR"))
            assert list(env.values()) == ["hello"]               # mapping -> environment
            client.close()


def test_invalid_options_name_the_field(gateway_factory):
    gw = gateway_factory({"options": {"fields": OPTION_FIELDS}})
    with connect(gw) as g:
        with pytest.raises(ValueError, match="worker_cores must be <= 4.000000, got 10"):
            g.new_cluster(worker_cores=10)
        with pytest.raises(ValueError, match="'huge' is not a valid option for size"):
            g.submit(size="huge")
        with pytest.raises(ValueError, match=r"Unknown fields \['nope'\]"):
            g.submit(nope=1)
        with pytest.raises(ValueError, match="worker_cores must be an integer, got 2.0"):
            g.submit(worker_cores=2.0)
        assert g.list_clusters() == []


def test_wrong_password_then_fixed(gateway_factory):
    gw = gateway_factory({"auth": {"password": "secret"}})
    g = connect(gw, password="wrong")
    try:
        with pytest.raises(aiohttp.ClientResponseError) as exc:
            g.list_clusters()
        assert exc.value.status == 401
        g.auth.password = "secret"
        assert g.list_clusters() == []
    finally:
        g.close()


def test_users_cannot_see_each_others_clusters(gateway_factory):
    gw = gateway_factory()
    with connect(gw, "alice") as alice, connect(gw, "bob") as bob:
        name = alice.submit()
        assert [c.name for c in alice.list_clusters()] == [name]
        assert bob.list_clusters() == []
        assert bob.list_clusters(status=["pending", "running", "stopping", "stopped", "failed"]) == []
        for call in (lambda: bob.get_cluster(name), lambda: bob.stop_cluster(name),
                     lambda: bob.scale_cluster(name, 1)):
            with pytest.raises(aiohttp.ClientResponseError) as exc:
                call()
            assert exc.value.status == 403
        alice.stop_cluster(name)
        assert alice.list_clusters() == []


def test_cluster_max_workers_warnings(gateway_factory):
    gw = gateway_factory({"cluster": {"cluster_max_workers": 2}})
    with connect(gw) as g, g.new_cluster() as cluster:
        with pytest.warns(GatewayWarning, match="Scaling to 2 instead"):
            cluster.scale(5)
        with pytest.warns(GatewayWarning, match="Using `maximum=2, minimum=0` instead"):
            cluster.adapt(maximum=5)
        with pytest.warns(GatewayWarning, match="Using `maximum=2, minimum=2` instead"):
            cluster.adapt(minimum=4, maximum=5)


def test_idle_timeout_stops_cluster(gateway_factory):
    gw = gateway_factory({"cluster": {"idle_timeout": 2}})
    with connect(gw) as g:
        cluster = g.new_cluster()
        name = cluster.name
        cluster.close(shutdown=False)
        report = wait_for(lambda: (r := g.get_cluster(name)).status.name in ("STOPPED", "FAILED") and r,
                          timeout=30, what="idle shutdown")
        assert report.status.name == "STOPPED"


def test_dashboard_through_proxy(gateway_factory):
    gw = gateway_factory()
    with connect(gw) as g, g.new_cluster() as cluster:
        assert cluster.dashboard_link == f"{gw.address}/clusters/{cluster.name}/status"
        with urllib.request.urlopen(cluster.dashboard_link, timeout=30) as resp:
            body = resp.read().decode()
        assert resp.status == 200
        assert "bokeh" in body.lower()


def test_killed_worker_is_replaced(gateway_factory):
    gw = gateway_factory()
    with connect(gw) as g, g.new_cluster() as cluster:
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=60)
        (before,) = client.scheduler_info()["workers"].values()
        # dask worker runs a nanny (the process the gateway started) and the
        # worker in a child process: kill both, as an OOM killer might.
        ((pid, nanny, ns),) = client.run(lambda: (os.getpid(), os.getppid(), os.readlink("/proc/self/ns/pid"))).values()
        pids = [host_pid(cluster.name, p, ns) for p in (nanny, pid)]  # both, before either dies
        for p in pids:
            os.kill(p, signal.SIGKILL)

        def replaced():
            ws = list(client.scheduler_info()["workers"].values())
            return len(ws) == 1 and ws[0]["name"] != before["name"]

        wait_for(replaced, timeout=60, what="a replacement worker")
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3
        client.close()


def test_killed_scheduler_fails_cluster(gateway_factory):
    gw = gateway_factory()
    with connect(gw) as g:
        cluster = g.new_cluster()
        client = cluster.get_client()
        pid, ns = client.run_on_scheduler(lambda: (os.getpid(), os.readlink("/proc/self/ns/pid")))
        pid = host_pid(cluster.name, pid, ns)
        client.close()
        cluster.close(shutdown=False)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: g.get_cluster(cluster.name).status.name == "FAILED", timeout=30, what="FAILED")
        assert g.list_clusters() == []
        # The error names the reason (daskgate answers the start loop's ?wait
        # with a 409 carrying it; upstream only says "see logs").
        with pytest.raises(GatewayClusterError, match="failed to start: .*scheduler"):
            g.connect(cluster.name)


def test_restart_keeps_clusters_running(gateway_factory):
    gw = gateway_factory({"backend": {"stop_clusters_on_shutdown": False}})
    g = connect(gw)
    cluster = g.new_cluster()
    try:
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=60)
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3
        gw.stop()
        gw.start()
        assert [c.name for c in g.list_clusters()] == [cluster.name]
        assert client.submit(sum, [3, 4], pure=False).result(timeout=60) == 7
        client.close()
    finally:
        cluster.shutdown()
        g.close()


def test_prefix(gateway_factory):
    gw = gateway_factory({"prefix": "/services/dask-gateway/"})
    assert gw.address.endswith("/services/dask-gateway")
    with connect(gw) as g, g.new_cluster() as cluster:
        assert cluster.dashboard_link.startswith(gw.address + "/clusters/")
        cluster.scale(1)
        client = cluster.get_client()
        assert client.submit(sum, [1, 1]).result(timeout=60) == 2
        client.close()
