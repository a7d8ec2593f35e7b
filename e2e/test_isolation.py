"""Tenant isolation on the embedded default: a task of alice's, run by her real dask
worker, tries to read bob's cluster key and token, the gateway's encryption key, store
and config, to list bob's work directory and to signal his scheduler. With the default
isolation (Landlock plus namespaces of its own) every attempt fails — files are denied,
bob's processes do not even exist for alice — and alice's cluster still works;
with `isolation: none` (what daskgate did before) the same attack succeeds, which
shows the test can see a leak."""

import os
from pathlib import Path

import pytest
from dask_gateway import BasicAuth, Gateway

from conftest import one_worker


def scheduler_pid(cluster_name):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"DASK_GATEWAY_CLUSTER_NAME={cluster_name}".encode() in env and b"scheduler" in cmd:
            return int(pid)
    raise AssertionError(f"no scheduler process for {cluster_name}")


@pytest.fixture
def shared_dir():
    """A directory other uids can traverse (the test's own tmp_path cannot be)."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="daskgate-user-clusters-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def user_mode_config(clusters):
    """isolation: user runs clusters as other uids, which need a Python they
    can execute: the venv's own interpreter may live under /root (pyenv),
    so clusters run the system's python3 of the same version with the
    venv's packages, from a clusters directory outside the test's."""
    import sys
    import sysconfig

    if os.geteuid() != 0:
        pytest.fail("isolation: user needs the gateway to run as root; the tests run as root (make test, CI)")
    py = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    assert os.access(py, os.X_OK), f"{py} is needed for isolation: user"
    site = sysconfig.get_paths()["purelib"]
    return {"backend": {"isolation": "user", "clusters_directory": clusters},
            "cluster": {"scheduler_cmd": [py, "-m", "distributed.cli.dask_scheduler"],
                        "worker_cmd": [py, "-m", "distributed.cli.dask_worker"],
                        "environment": {"PYTHONPATH": site}}}


@pytest.mark.parametrize("isolation", ["sandbox", "user", "none"])
def test_a_tenant_cannot_reach_another(gateway_factory, tmp_path, shared_dir, isolation):
    # Defined here so that it travels to alice's worker by value.
    def attack(targets):
        """Runs on alice's worker: what can it read, list or signal?"""
        import os

        out = {}
        for what, (kind, arg) in targets.items():
            try:
                if kind == "read":
                    with open(arg, "rb") as f:
                        f.read(1)
                elif kind == "list":
                    os.listdir(arg)
                elif kind == "signal":
                    os.kill(arg, 0)
                out[what] = "ALLOWED"
            except PermissionError:
                out[what] = "denied"
            except (FileNotFoundError, ProcessLookupError):
                out[what] = "invisible"  # another pid namespace: bob's processes do not exist here
            except OSError as e:
                out[what] = f"error {e.errno}"
        return out

    config = user_mode_config(shared_dir) if isolation == "user" else {"backend": {"isolation": isolation}}
    gw = gateway_factory(config)
    data = Path(gw.config["data_dir"])
    clusters = Path(config["backend"].get("clusters_directory") or str(data) + "-clusters")
    with Gateway(gw.address, auth=BasicAuth("bob", "pw")) as bob, bob.new_cluster() as bobs:
        bob_dir = clusters / bobs.name
        bob_pid = scheduler_pid(bobs.name)
        store = next(p for p in data.iterdir() if p.suffix == ".db")
        targets = {
            "bob's TLS key": ("read", str(bob_dir / ".certs" / "dask.pem")),
            "bob's token (his scheduler's environment)": ("read", f"/proc/{bob_pid}/environ"),
            "bob's work directory": ("list", str(bob_dir)),
            "bob's scheduler (signal)": ("signal", bob_pid),
            "the gateway's encryption key": ("read", str(data / "encrypt.key")),
            "the gateway's store": ("read", str(store)),
            "the gateway's config": ("read", str(gw.config_path)),
        }
        with Gateway(gw.address, auth=BasicAuth("alice", "pw")) as alice, alice.new_cluster() as mine:
            client, _ = one_worker(mine)
            got = client.submit(attack, targets, pure=False).result()
            own = client.submit(lambda: open(os.environ["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"]).read()[:27]).result()
            assert own == "-----BEGIN CERTIFICATE-----"  # her own cluster's files are hers
            uids = [client.submit(os.getuid, pure=False).result(), os.stat(bob_dir / ".certs" / "dask.pem").st_uid]
            assert client.submit(sum, [1, 2]).result() == 3
            client.close()
    if isolation == "user":
        # Another uid: files and processes exist, and every one is denied.
        assert all(got[what] == "denied" for what in targets), got
        assert uids[0] != uids[1] and 0 not in uids and all(u >= 1000 for u in uids), uids
    elif isolation == "sandbox":
        assert all(got[what] in ("denied", "invisible") for what in targets), got
        assert got["bob's TLS key"] == got["the gateway's encryption key"] == got["the gateway's store"] == "denied", got
    else:
        assert got["bob's TLS key"] == "ALLOWED" and got["the gateway's encryption key"] == "ALLOWED", got
