"""The real outside components the auth and browser tests build on start and work
here: a throwaway Kerberos realm, configurable-http-proxy, headless Chromium."""

import http.server
import threading
import urllib.request

import pytest

from realtools import KDC, HTTPProxy, chromium_dump_dom


@pytest.fixture
def page_server():
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (b"<html><body><p id=s></p><script>document.getElementById('s')"
                    b".textContent = 'rendered ' + location.pathname;</script></body></html>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_kerberos_realm_issues_tickets(tmp_path):
    kdc = KDC(tmp_path / "kdc").start()
    try:
        kdc.add_user("alice", "alice-pw")
        kdc.add_service("HTTP/localhost", tmp_path / "http.keytab")
        kdc.kinit("alice", "alice-pw")
        assert f"alice@{KDC.REALM}" in kdc.run("klist", ccache="alice")
        assert f"HTTP/localhost@{KDC.REALM}" in kdc.run("klist", "-k", str(tmp_path / "http.keytab"))
        with pytest.raises(Exception):
            kdc.kinit("alice", "wrong-pw", ccache="wrong")
    finally:
        kdc.stop()


def test_configurable_http_proxy_routes(tmp_path, page_server):
    chp = HTTPProxy(tmp_path, page_server)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{chp.port}/x", timeout=10).read()
        assert b"document.getElementById" in body
    finally:
        chp.stop()


def test_headless_chromium_runs_scripts(tmp_path, page_server):
    dom = chromium_dump_dom(page_server + "/hello", tmp_path)
    assert '<p id="s">rendered /hello</p>' in dom
