"""JupyterHub authentication with a real JupyterHub (5.5, as the Helm chart ships it,
and 6.1) and its configurable-http-proxy: the real client with a user's hub token
reaches the gateway through the hub's proxy under /services/dask-gateway."""

import time

import pytest

from conftest import Gateway as Daskgate
from conftest import hub_client
from conftest import one_worker
from realtools import HUB_VERSIONS, JupyterHub

PREFIX = "/services/dask-gateway"

# Members of the hub group "bigmem" see one more option field.
GROUP_FIELDS = """
package daskgate.options

fields := [
    {"field": "worker_cores", "type": "int", "default": 1, "min": 1, "max": 1},
    {"field": "big", "type": "bool", "default": false, "label": "Big workers (bigmem group)"},
] if "bigmem" in input.user.groups

else := [{"field": "worker_cores", "type": "int", "default": 1, "min": 1, "max": 1}]

config := {"worker_cores": input.options.worker_cores}
"""


@pytest.fixture(scope="module", params=HUB_VERSIONS)
def hub(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"hub-{request.param}")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "fields.rego").write_text(GROUP_FIELDS)
    hub = JupyterHub(tmp / "hub", request.param)
    gw = Daskgate(tmp, {
        "prefix": PREFIX, "policies": [str(tmp / "policies")],
        "auth": {"type": "jupyterhub", "jupyterhub_api_url": hub.api_url, "cache_max_age": "2s",
                 "jupyterhub_api_token": hub.gateway_token, "jupyterhub_service_name": "dask-gateway"},
    })
    try:
        hub.start(gateway_url=f"http://127.0.0.1:{gw.port}")
        gw.start()
        hub.add_user("alice", groups=["bigmem"])
        hub.add_user("bob")
        hub.gateway = gw
        yield hub
    finally:
        gw.stop()
        hub.stop()


def test_user_token_through_the_hub_proxy(hub):
    alice_token = hub.token("alice")["token"]
    bob_token = hub.token("bob")["token"]
    with hub_client(hub, bob_token) as bob:
        assert list(bob.cluster_options()) == ["worker_cores"]
    with hub_client(hub, alice_token) as alice:
        assert list(alice.cluster_options()) == ["worker_cores", "big"]  # hub group → policy
        with alice.new_cluster() as cluster:
            assert cluster.name in [c.name for c in alice.list_clusters()]
            client, _ = one_worker(cluster)
            assert client.submit(lambda x: x + 1, 1).result() == 2
            client.close()
            with hub_client(hub, bob_token) as bob:
                assert bob.list_clusters() == []
                with pytest.raises(Exception, match="lacks permissions|not found|403|404"):
                    bob.connect(cluster.name)


def test_service_token(hub):
    with hub_client(hub, hub.service_token) as svc:
        assert svc.list_clusters() == []
        with svc.new_cluster() as cluster:
            (info,) = svc.list_clusters()
            assert info.name == cluster.name


def status_of(hub, token):
    """The gateway's status and challenge for a request with a hub token."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{hub.url}{PREFIX}/api/v1/clusters/",
                                 headers={"Authorization": f"jupyterhub {token}"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WWW-Authenticate", "")


def test_token_without_the_access_scope_is_refused(hub):
    token = hub.token("alice", scopes=["read:users:name!user=alice"])["token"]
    assert status_of(hub, token) == (401, "jupyterhub")
    assert status_of(hub, hub.token("alice")["token"]) == (200, "")
    with hub_client(hub, token) as gw:
        with pytest.raises(Exception):
            gw.list_clusters()


def test_bad_token_is_refused(hub):
    assert status_of(hub, "not-a-token") == (401, "jupyterhub")  # the hub's 403, mapped to 401
    with hub_client(hub, "not-a-token") as gw:
        with pytest.raises(Exception):
            gw.list_clusters()


def test_revoked_token_stops_within_the_cache_age(hub):
    t = hub.token("bob")
    with hub_client(hub, t["token"]) as gw:
        assert gw.list_clusters() == []
        hub.revoke("bob", t["id"])
        time.sleep(2.5)  # cache_max_age: 2s
        with pytest.raises(Exception):
            gw.list_clusters()
    assert status_of(hub, t["token"]) == (401, "jupyterhub")


def browser():
    """An HTTP session as a browser has one: cookies kept, redirects followed."""
    import http.cookiejar
    import urllib.request

    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def sign_in_at_hub(opener, start_url, user):
    """Open start_url, land on the hub's login form, sign in as user; returns the
    response of the page the redirects end on."""
    import re
    import urllib.parse

    resp = opener.open(start_url, timeout=30)
    assert "/hub/login" in resp.geturl(), resp.geturl()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', resp.read().decode()).group(1)
    form = urllib.parse.urlencode({"username": user, "password": "any", "_xsrf": xsrf}).encode()
    return opener.open(resp.geturl(), data=form, timeout=60)


def test_dashboard_behind_the_hub_login(hub, tmp_path):
    import urllib.error
    import urllib.request

    from playwright.sync_api import sync_playwright

    from realtools import CHROMIUM_ARGS, tool

    with hub_client(hub, hub.token("alice")["token"]) as gw, gw.new_cluster() as cluster:
        url = f"{hub.url}{PREFIX}/clusters/{cluster.name}/status"
        assert cluster.dashboard_link == url

        # Without a session a browser is sent to the hub's OAuth, not served.
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args):
                return None
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.build_opener(NoRedirect).open(url, timeout=10)
        assert e.value.code == 302
        assert e.value.headers["Location"].startswith("/hub/api/oauth2/authorize?client_id=service-dask-gateway&")

        # The owner signs in at the hub's form and lands on her dashboard.
        resp = sign_in_at_hub(browser(), url, "alice")
        assert resp.geturl() == url and resp.status == 200
        assert "bokeh" in resp.read().decode().lower()

        # Signed in, bob is still not let into alice's dashboard.
        with pytest.raises(urllib.error.HTTPError) as e:
            sign_in_at_hub(browser(), url, "bob")
        assert e.value.code == 403

        # The same in a real browser: the page renders and its websocket connects.
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=tool("chromium"), args=CHROMIUM_ARGS)
            try:
                page = b.new_page()
                sockets = []
                page.on("websocket", lambda ws: sockets.append(ws))
                page.goto(url)
                page.fill("#username_input", "alice")
                page.fill("#password_input", "any")
                page.click("#login_submit")
                page.wait_for_url(url, timeout=30000)
                page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=30000)
                assert any("/ws" in ws.url and not ws.is_closed() for ws in sockets), [ws.url for ws in sockets]
            finally:
                b.close()


# Last in this module: it stops the hub.
def test_hub_down_is_a_clear_502(hub):
    import urllib.error
    import urllib.request

    token = hub.token("bob")["token"]
    hub.stop()
    req = urllib.request.Request(f"{hub.gateway.address}/api/v1/clusters/",
                                 headers={"Authorization": f"jupyterhub {token}"})
    t0 = time.time()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 502
    assert b"Upstream failure verifying user's JupyterHub API token" in e.value.read()
    assert time.time() - t0 < 15
