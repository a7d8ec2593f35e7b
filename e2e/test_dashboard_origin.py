"""Dashboards on an origin of their own, attacked in a real browser.

bob serves a page of his own from his cluster's scheduler (any cluster
owner can: the dashboard is his code). An admin who is signed in to the
API opens it. The page tries to list, create and stop clusters with the
admin's browser credentials; the gateway must refuse every attempt, and
bob's scheduler must never see the admin's credentials.
"""

import json
import os

from dask_gateway import BasicAuth, Gateway

from conftest import wait_for

ADMIN_POLICY = os.path.join(os.path.dirname(__file__), "..", "examples", "rego", "admin")


def origin_gateway(gateway_factory):
    gw = gateway_factory({"auth": {"type": "simple", "password": "pw"}, "policies": [ADMIN_POLICY]}, start=False)
    # Two names of one site (the browser maps *.daskgate.test to loopback):
    # it sends the API's SameSite=Lax cookie with the page's requests, so
    # the gateway's own cross-site check is what has to stop them.
    gw.config["proxy"] = {"dashboard_origin": f"http://dash.daskgate.test:{gw.port}",
                          "api_origin": f"http://api.daskgate.test:{gw.port}"}
    gw.config_path.write_text(json.dumps(gw.config))
    return gw.start()


def test_a_tenant_dashboard_cannot_act_for_its_visitor(gateway_factory):
    from playwright.sync_api import sync_playwright

    from realtools import CHROMIUM_ARGS, tool

    gw = origin_gateway(gateway_factory)
    api = f"http://api.daskgate.test:{gw.port}"
    dash = f"http://dash.daskgate.test:{gw.port}"
    with Gateway(gw.address, auth=BasicAuth("alice", "pw")) as alice_gw, \
            Gateway(gw.address, auth=BasicAuth("bob", "pw")) as bob_gw, \
            Gateway(gw.address, auth=BasicAuth("root", "pw")) as root_gw, \
            alice_gw.new_cluster() as victim, bob_gw.new_cluster() as evil:
        page_html = EVIL_PAGE.replace("API", api).replace("VICTIM", victim.name).replace("SELF", f"/clusters/{evil.name}")

        def install(dask_scheduler=None):
            from tornado import web
            seen = dask_scheduler.evil_seen = []

            class Evil(web.RequestHandler):
                def record(self):
                    seen.append({"path": self.request.path, "headers": dict(self.request.headers),
                                 "body": self.request.body.decode(errors="replace")})

                def get(self):
                    self.record()
                    self.set_header("Content-Type", "text/html")
                    self.write(page_html)

                def post(self):
                    self.record()

            dask_scheduler.http_application.add_handlers(r".*", [(r"/evil", Evil), (r"/report", Evil)])

        with evil.get_client() as c:
            c.run_on_scheduler(install)
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=tool("chromium"),
                                      args=CHROMIUM_ARGS + ["--host-resolver-rules=MAP *.daskgate.test 127.0.0.1"])
                try:
                    ctx = b.new_context(http_credentials={"username": "root", "password": "pw"})
                    page = ctx.new_page()
                    # The admin is signed in to the API (a session cookie, and Basic
                    # credentials the browser answers challenges with) ...
                    page.goto(f"{api}/api/v1/clusters/")
                    assert victim.name in page.content() and evil.name in page.content()
                    assert any(ck["domain"] == "api.daskgate.test" and ck["name"].startswith("daskgate-") for ck in ctx.cookies())
                    # ... and opens bob's page from its API-origin link: it is handed to
                    # the dashboard origin.
                    page.goto(f"{api}/clusters/{evil.name}/evil")
                    assert page.url == f"{dash}/clusters/{evil.name}/evil", page.url
                    page.wait_for_function("() => window.done === true", timeout=30000)
                    results = page.evaluate("() => window.results")

                    # A dashboard still works on its origin: Bokeh renders, its
                    # websocket connects.
                    sockets = []
                    page.on("websocket", lambda ws: sockets.append(ws))
                    page.goto(f"{api}/clusters/{victim.name}/status")
                    assert page.url == f"{dash}/clusters/{victim.name}/status", page.url
                    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=30000)
                    assert any("/ws" in ws.url and not ws.is_closed() for ws in sockets), [ws.url for ws in sockets]
                finally:
                    b.close()
            seen = c.run_on_scheduler(lambda dask_scheduler=None: dask_scheduler.evil_seen)

        print("page results:", results)
        # Nothing the page tried got through.
        for attempt, outcome in results.items():
            assert outcome in ("403", "401", "404") or outcome.startswith("error:"), (attempt, outcome)
        assert results["create-form"] in ("403", "401", "error:cross-origin"), results
        names = sorted(cl.name for cl in root_gw.list_clusters())
        assert names == sorted([victim.name, evil.name]), names
        assert alice_gw.get_cluster(victim.name).status.name == "RUNNING"
        # bob's scheduler saw the visit and the report, never a credential.
        assert {s["path"] for s in seen} == {"/evil", "/report"}, [s["path"] for s in seen]
        for s in seen:
            headers = {k.lower(): v for k, v in s["headers"].items()}
            assert "authorization" not in headers, s
            assert "daskgate-" not in headers.get("cookie", ""), s
    # The page's POSTs (a fetch and a form: requests a browser sends without
    # asking) reached the gateway and were refused there as cross-site.
    log = gw.log()
    assert log.count("route=create code=403") >= 2, [line for line in log.splitlines() if "route=create" in line]
    assert "route=create code=201" not in log.split(evil.name)[-1]


EVIL_PAGE = """<!doctype html><html><body><script>
window.results = {};
async function attempt(name, f) {
  try { const r = await f(); window.results[name] = String(r.status); }
  catch (e) { window.results[name] = "error:" + e.name; }
}
(async () => {
  await attempt("list", () => fetch("API/api/v1/clusters/", {credentials: "include"}));
  await attempt("create", () => fetch("API/api/v1/clusters/", {method: "POST", credentials: "include",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({cluster_options: {}})}));
  await attempt("stop", () => fetch("API/api/v1/clusters/VICTIM", {method: "DELETE", credentials: "include"}));
  await attempt("stop-no-cors", () => fetch("API/api/v1/clusters/VICTIM", {method: "POST", mode: "no-cors",
      credentials: "include", body: "x"}).then(() => ({status: "error:opaque"})));
  await attempt("same-origin-api", () => fetch("/api/v1/clusters/", {credentials: "include"}));
  // A form posted into a frame: a top-level-style cross-site POST.
  await new Promise(resolve => {
    const f = document.createElement("iframe"); f.name = "sink"; document.body.appendChild(f);
    const form = document.createElement("form");
    form.method = "POST"; form.action = "API/api/v1/clusters/"; form.target = "sink"; form.enctype = "text/plain";
    const i = document.createElement("input"); i.name = '{"cluster_options": {}, "x": "'; i.value = '"}';
    form.appendChild(i); document.body.appendChild(form);
    f.onload = () => {
      try { window.results["create-form"] = f.contentDocument ? f.contentDocument.body.innerText : "error:cross-origin"; }
      catch (e) { window.results["create-form"] = "error:cross-origin"; }
      resolve();
    };
    form.submit();
  });
  await fetch("SELF/report", {method: "POST", body: JSON.stringify(window.results)});
  window.done = true;
})();
</script></body></html>"""
