"""Every configuration in examples/ runs with the real client."""

import pathlib

import yaml
from dask_gateway import BasicAuth, Gateway

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_example_config_runs_readme_snippet(gateway_factory):
    config = yaml.safe_load((EXAMPLES / "daskgate.yaml").read_text())
    del config["address"]  # the fixture picks a free port
    gw = gateway_factory(config)
    with Gateway(gw.address, auth=BasicAuth("alice", "pw")) as g:
        opts = g.cluster_options()
        assert list(opts) == ["worker_cores", "worker_memory", "environment"]
        opts.worker_cores = 2
        opts.worker_memory = "2 GiB"
        cluster = g.new_cluster(opts)
        cluster.scale(1)
        client = cluster.get_client()
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        (worker,) = client.scheduler_info()["workers"].values()
        assert worker["nthreads"] == 2 and worker["memory_limit"] == 2 * 2**30
        cluster.adapt(minimum=0, maximum=3)
        client.close()
        cluster.shutdown()
