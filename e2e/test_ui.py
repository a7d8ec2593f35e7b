"""The web page and the clusters that follow their notebook, with a real JupyterHub
(5.5, as the Helm chart ships it, and 6.1), real single-user servers, real headless
Chromium and the real client."""

import json
import re
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from dask_gateway import Gateway

from conftest import Gateway as Daskgate
from conftest import hub_client
from conftest import wait_for
from realtools import CHROMIUM_ARGS, HUB_VERSIONS, JupyterHub, tool

PREFIX = "/services/dask-gateway"
GRACE = 3  # seconds: lifecycle.hub_server_grace

OPTIONS = """
package daskgate.options

fields := [{"field": "worker_cores", "type": "int", "default": 1, "min": 1, "max": 2, "label": "Worker cores"}]

config := {"worker_cores": input.options.worker_cores}
"""


@pytest.fixture(scope="module", params=HUB_VERSIONS)
def hub(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"ui-hub-{request.param}")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "options.rego").write_text(OPTIONS)
    # The gateway's service may see users' servers: what stop_with_hub_server needs.
    hub = JupyterHub(tmp / "hub", request.param, gateway_roles=["read:users:name", "read:servers"])
    gw = Daskgate(tmp, {
        "prefix": PREFIX, "policies": [str(tmp / "policies")],
        "auth": {"type": "jupyterhub", "jupyterhub_api_url": hub.api_url, "jupyterhub_api_token": hub.gateway_token,
                 "jupyterhub_service_name": "dask-gateway"},
        "lifecycle": {"check_period": "1s", "stop_with_hub_server": True, "hub_server_grace": f"{GRACE}s"},
    })
    try:
        hub.start(gateway_url=f"http://127.0.0.1:{gw.port}")
        gw.start()
        hub.gateway = gw
        yield hub
    finally:
        for user in ("alice", "bob", "carol"):
            try:
                hub.stop_server(user, timeout=20)
            except Exception:
                pass
        gw.stop()
        hub.stop()


def page_state(hub, token):
    """What the page's script sees, asked with a hub token."""
    req = urllib.request.Request(f"{hub.url}{PREFIX}/ui/api/state", headers={"Authorization": f"jupyterhub {token}"})
    with urllib.request.urlopen(req, timeout=15) as resp:
        return json.load(resp)


def status_of(gw, name):
    (c,) = [c for c in gw.list_clusters(status=["pending", "running", "stopping", "stopped", "failed"]) if c.name == name]
    return c.status.name


def test_cluster_stops_when_its_notebook_server_stops(hub):
    hub.add_user("carol")
    hub.start_server("carol")
    token = hub.token("carol")["token"]
    with hub_client(hub, token) as gw:
        cluster = gw.new_cluster()
        name = cluster.name
        # While her server runs, the cluster lives well past the grace period.
        time.sleep(GRACE + 3)
        assert status_of(gw, name) == "RUNNING"

        # Timed from the stop request: the hub shows the server stopping
        # (pending "stop") before it is gone, and the grace starts there.
        asked = time.time()
        hub.stop_server("carol")  # as the idle culler does
        gone = time.time() - asked
        wait_for(lambda: status_of(gw, name) == "STOPPED", timeout=GRACE + 20, what="the cluster to stop")
        took = time.time() - asked
        print(f"cluster stopped {took:.1f}s after carol's server was asked to stop "
              f"(the hub took {gone:.1f}s to stop it; grace {GRACE}s, checks every 1s)")
        assert took >= GRACE - 0.5, "stopped before the grace period ended"
        (c,) = [c for c in page_state(hub, token)["clusters"] if c["name"] == name]
        assert c["status"] == "STOPPED"
        assert "JupyterHub server stopped" in c["reason"], c
        cluster.close()
    log = hub.gateway.log()
    assert "stopping cluster automatically" in log and name in log


def sign_in(page, url, user, start=None):
    """Opens start (default: url), signs in at the hub's form, lands on url."""
    page.goto(start or url)
    page.fill("#username_input", user)
    page.fill("#password_input", "any")
    page.click("#login_submit")
    page.wait_for_url(url, timeout=30000)


def row(page, name):
    return page.locator(f'tr[data-cluster="{name}"]')


def test_page_in_a_browser(hub, tmp_path):
    from playwright.sync_api import sync_playwright

    for user in ("alice", "bob"):
        hub.add_user(user)
        hub.start_server(user)  # their clusters follow their servers
    url = f"{hub.url}{PREFIX}/ui/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=tool("chromium"), args=CHROMIUM_ARGS)
        try:
            alice = browser.new_context(viewport={"width": 1280, "height": 820}).new_page()
            errors = []
            alice.on("pageerror", lambda e: errors.append(str(e)))
            # From the hub's service link (the prefix), signed out: the hub's login, then the page.
            sign_in(alice, url, "alice", start=f"{hub.url}{PREFIX}/")
            alice.wait_for_selector("#opt-worker_cores")
            assert alice.inner_text("#user") == "alice"

            # Start a cluster from the form.
            alice.fill("#opt-worker_cores", "2")
            assert "options.worker_cores = 2" in alice.inner_text("#snippet")
            alice.click("#create")
            alice.locator("#message", has_text="Started cluster").wait_for()
            name = alice.inner_text("#message").split()[-1]
            r = row(alice, name)
            r.locator(".status.RUNNING").wait_for(timeout=60000)
            assert "worker_cores = 2" in r.inner_text()

            # Scale to one worker: the row shows it, live.
            r.locator("input[type=number]").fill("1")
            r.locator("button.scale").click()
            r.locator("td:nth-child(4)", has_text=re.compile(r"^1\b")).wait_for(timeout=60000)

            # The dashboard link opens the cluster's dashboard.
            with alice.expect_popup() as popup:
                r.locator("a.dashboard").click()
            dash = popup.value
            dash.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=30000)
            assert dash.url.endswith(f"{PREFIX}/clusters/{name}/status")
            dash.close()

            # The Python snippet connects the real client to the cluster.
            r.locator("button.connect").click()
            snippet = alice.inner_text("#snippet")
            assert f'gateway.connect("{name}")' in snippet and "gateway = Gateway()" in snippet
            assert f'Gateway("{hub.url}{PREFIX}", proxy_address=..., auth="jupyterhub")' in snippet
            script = snippet + "\nprint(client.submit(lambda: 41 + 1).result())\nclient.close()\n"
            # Run where it is meant to run: a notebook's environment, as daskhub sets it.
            env = {**os.environ, "JUPYTERHUB_API_TOKEN": hub.token("alice")["token"],
                   "DASK_GATEWAY__ADDRESS": f"{hub.url}{PREFIX}", "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
                   "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{hub.gateway.port}"}
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0 and out.stdout.strip().endswith("42"), out.stderr[-2000:]

            # Let the activity column catch up, then the picture for the docs.
            r.locator(".col-activity", has_text="idle").wait_for()
            shot = tmp_path / "ui.png"
            alice.screenshot(path=str(shot), full_page=True)
            if os.environ.get("DASKGATE_UI_SCREENSHOT"):
                shutil.copy(shot, os.environ["DASKGATE_UI_SCREENSHOT"])

            # Bob sees none of it and cannot act on it, even with his own page's token.
            bob = browser.new_context().new_page()
            sign_in(bob, url, "bob")
            bob.wait_for_selector("#opt-worker_cores")
            bob.locator("#empty").wait_for(state="visible")
            assert row(bob, name).count() == 0
            csrf = bob.locator('meta[name="csrf-token"]').get_attribute("content")
            resp = bob.context.request.post(f"{url}api/clusters/{name}/stop", headers={"X-Daskgate-Csrf": csrf})
            assert resp.status == 403, resp.text()
            # A page of another origin cannot act with alice's session either.
            evil = alice.context.new_page()
            evil.goto("about:blank")
            evil.evaluate("""async (url) => {
                try { const r = await fetch(url, {method: "POST", credentials: "include", mode: "no-cors"}); return r.type; }
                catch (e) { return "refused"; } }""", f"{url}api/clusters/{name}/stop")
            evil.close()
            assert alice.locator(f'tr[data-cluster="{name}"] .status.RUNNING').count() == 1

            # Stop, confirmed with a second click; the row says who stopped it.
            r.locator("button.stop").click()
            r.locator("button.stop").click()
            r.locator(".status.STOPPED").wait_for(timeout=60000)
            assert "stopped by alice from the web page" in r.inner_text()
            assert errors == [], errors
        finally:
            browser.close()


# An option decides, through the policy, which clusters end with their last client.
EPHEMERAL = """
package daskgate.options

fields := [{"field": "ephemeral", "type": "bool", "default": false, "label": "Stop when my last client leaves"}]

config := {"last_client_timeout": "3s"} if input.options.ephemeral

else := {}
"""


def test_cluster_stops_after_its_last_client_leaves(gateway_factory, tmp_path):
    from dask_gateway.auth import BasicAuth

    (tmp_path / "ephemeral.rego").write_text(EPHEMERAL)
    gw = gateway_factory({"policies": [str(tmp_path / "ephemeral.rego")], "lifecycle": {"check_period": "1s"}})
    with Gateway(gw.address, auth=BasicAuth("dave", "")) as g:
        ephemeral, kept = g.new_cluster(ephemeral=True), g.new_cluster()
        client = ephemeral.get_client()
        time.sleep(6)  # twice the timeout, with a client connected: it lives
        assert status_of(g, ephemeral.name) == "RUNNING"
        client.close()
        left = time.time()
        wait_for(lambda: status_of(g, ephemeral.name) == "STOPPED", timeout=20, what="the cluster to stop")
        took = time.time() - left
        print(f"cluster stopped {took:.1f}s after its last client left (last_client_timeout 3s, checks every 1s)")
        assert took >= 1.5  # timed from the last check that saw the client: up to one period earlier
        assert status_of(g, kept.name) == "RUNNING"  # no rule for this one

        req = urllib.request.Request(f"{gw.address}/ui/api/state")
        req.add_header("Authorization", "Basic ZGF2ZTo=")  # dave:
        with urllib.request.urlopen(req, timeout=15) as resp:
            (c,) = [c for c in json.load(resp)["clusters"] if c["name"] == ephemeral.name]
        assert c["reason"] == "no client connected for 3s (last_client_timeout)", c
        kept.shutdown()
        ephemeral.close()
