"""Rego policies with the real client: fields, options, authorization, quota, reload."""

import pathlib
import time

import pytest
from dask_gateway import BasicAuth, Gateway

from conftest import one_worker, wait_for

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "rego"

OPTIONS = """
package daskgate.options

fields := [
    {"field": "worker_memory_gib", "type": "float", "default": 1, "min": 0.5, "max": 4, "label": "Worker memory (GiB)"},
    {"field": "worker_cores", "type": "int", "default": 1, "min": 1, "max": 2},
] if input.user.name == "alice"

else := [{"field": "worker_cores", "type": "int", "default": 1, "min": 1, "max": 1}]

errors contains "2 cores need at least 2 GiB of memory" if {
    input.options.worker_cores == 2
    input.options.worker_memory_gib < 2
}

config := {
    "worker_cores": input.options.worker_cores,
    "worker_memory": round(object.get(input.options, "worker_memory_gib", 1) * 1073741824),
}
"""


def policy_gateway(gateway_factory, tmp_path, *sources):
    d = tmp_path / "policies"
    d.mkdir(exist_ok=True)
    for i, src in enumerate(sources):
        (d / f"p{i}.rego").write_text(src)
    return gateway_factory({"policies": [str(d)]}), d


def connect(gw, user):
    return Gateway(gw.address, auth=BasicAuth(user, "pw"))


def test_options_policy(gateway_factory, tmp_path):
    gw, _ = policy_gateway(gateway_factory, tmp_path, OPTIONS)
    with connect(gw, "bob") as bob:
        assert list(bob.cluster_options()) == ["worker_cores"]
    with connect(gw, "alice") as alice:
        assert list(alice.cluster_options()) == ["worker_memory_gib", "worker_cores"]
        with pytest.raises(ValueError, match="2 cores need at least 2 GiB of memory"):
            alice.new_cluster(worker_cores=2, worker_memory_gib=1.0)
        opts = alice.cluster_options()
        opts.worker_memory_gib = 1.5
        with alice.new_cluster(opts) as cluster:
            client, worker = one_worker(cluster)
            assert worker["memory_limit"] == int(1.5 * 2**30)
            client.close()


def test_quota_and_admin(gateway_factory, tmp_path):
    quota = (EXAMPLES / "quota" / "policy.rego").read_text()
    admin_override = """
package daskgate.authz

allow if input.user.name == "root"
"""
    gw, _ = policy_gateway(gateway_factory, tmp_path, quota, admin_override)
    with connect(gw, "alice") as alice, connect(gw, "root") as root:
        names = [alice.submit(), alice.submit()]
        with pytest.raises(ValueError, match="Quota exceeded: alice already has 2 of 2 clusters"):
            alice.submit()
        listed = {c.name for c in root.list_clusters()}
        assert listed == set(names)
        root.stop_cluster(names[0])
        assert [c.name for c in alice.list_clusters()] == [names[1]]
        name3 = alice.submit()  # a slot is free again
        alice.stop_cluster(name3)
        alice.stop_cluster(names[1])


def test_hot_reload(gateway_factory, tmp_path):
    v1 = 'package daskgate.options\nfields := [{"field": "v1", "type": "bool"}]\n'
    gw, d = policy_gateway(gateway_factory, tmp_path, v1)
    with connect(gw, "alice") as g:
        assert list(g.cluster_options()) == ["v1"]
        time.sleep(0.05)
        (d / "p0.rego").write_text(v1.replace("v1", "v2"))
        wait_for(lambda: list(g.cluster_options()) == ["v2"], timeout=10, what="the reloaded policy")
        (d / "p0.rego").write_text("package daskgate.options\nfields := [\n")  # broken edit
        time.sleep(2)
        assert list(g.cluster_options()) == ["v2"]  # the last good policy keeps serving
        import json, urllib.request
        health = json.loads(urllib.request.urlopen(gw.address + "/api/health").read())
        assert health["status"] == "warn" and "p0.rego" in health["policy"]


ROOT = pathlib.Path(__file__).resolve().parent.parent


ENGINES = {
    "rego": ROOT / "examples" / "rego" / "worker_resources",
    "go-wasm": ROOT / "examples" / "wasm" / "go" / "handler.wasm",
    "opa-wasm-bundle": ROOT / "examples" / "wasm" / "opa" / "worker_resources.tar.gz",
}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_options_engines_agree(gateway_factory, engine):
    """The seed handler as Rego, as a Go WASM module and as Rego compiled to
    an OPA wasm bundle: same fields, same worker processes."""
    path = ENGINES[engine]
    assert path.exists(), f"{path} is built by `make examples` (make test does)"
    gw = gateway_factory({"policies": [str(path)]})
    with connect(gw, "alice") as g:
        opts = g.cluster_options()
        assert list(opts) == ["worker_cores", "worker_memory", "image"]
        opts.worker_cores = 3
        opts.worker_memory = 1.5
        with g.new_cluster(opts) as cluster:
            client, worker = one_worker(cluster)
            assert worker["nthreads"] == 3
            assert worker["memory_limit"] == int(1.5 * 2**30)
            client.close()
