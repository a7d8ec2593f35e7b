"""The real outside components the tests drive, started on loopback in a temp dir:
a throwaway MIT Kerberos realm, JupyterHub's configurable-http-proxy and headless
Chromium. `make deps` (hack/install-deps) installs them; a missing one fails."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHP = ROOT / "hack" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name):
    """The path of an installed tool, searched also in /usr/sbin; fails if missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert path, f"{name} is not installed: run `make deps`"
    return path


def wait_port(port, proc, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} not listening on {port} after {timeout}s")


class KDC:
    """A throwaway Kerberos realm: krb5kdc on a free port, its database, config and
    credential caches under dir; env() gives the variables that select it."""

    REALM = "DASKGATE.TEST"

    def __init__(self, dir):
        self.dir = Path(dir)
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "krb5.conf").write_text(
            f"[libdefaults]\n default_realm = {self.REALM}\n dns_lookup_kdc = false\n"
            f" dns_lookup_realm = false\n rdns = false\n udp_preference_limit = 1\n"
            f"[realms]\n {self.REALM} = {{\n  kdc = 127.0.0.1:{self.port}\n }}\n"
            f"[domain_realm]\n localhost = {self.REALM}\n")
        (self.dir / "kdc.conf").write_text(
            f"[kdcdefaults]\n kdc_ports = {self.port}\n kdc_tcp_ports = {self.port}\n"
            f"[realms]\n {self.REALM} = {{\n  database_name = {self.dir}/principal\n"
            f"  key_stash_file = {self.dir}/stash\n  acl_file = {self.dir}/kadm5.acl\n"
            f"  max_life = 10h 0m 0s\n }}\n[logging]\n kdc = FILE:{self.dir}/kdc.log\n")
        (self.dir / "kadm5.acl").write_text("")
        self.proc = None

    def env(self, ccache="default"):
        return {**os.environ, "KRB5_CONFIG": str(self.dir / "krb5.conf"),
                "KRB5_KDC_PROFILE": str(self.dir / "kdc.conf"),
                "KRB5CCNAME": f"FILE:{self.dir}/cc-{ccache}"}

    def run(self, *args, input=None, ccache="default"):
        return subprocess.run([tool(args[0]), *args[1:]], input=input, env=self.env(ccache),
                              capture_output=True, text=True, check=True, timeout=30).stdout

    def start(self):
        self.run("kdb5_util", "create", "-s", "-r", self.REALM, "-P", "master-password")
        self.proc = subprocess.Popen([tool("krb5kdc"), "-n"], env=self.env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "krb5kdc")
        return self

    def add_user(self, name, password):
        self.run("kadmin.local", "-q", f"addprinc -pw {password} {name}")

    def add_service(self, principal, keytab):
        self.run("kadmin.local", "-q", f"addprinc -randkey {principal}")
        self.run("kadmin.local", "-q", f"ktadd -k {keytab} {principal}")

    def kinit(self, name, password, ccache=None):
        self.run("kinit", name, input=password + "\n", ccache=ccache or name)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)


class HTTPProxy:
    """configurable-http-proxy, JupyterHub's proxy: public port, API port, a token."""

    def __init__(self, dir, default_target):
        self.port, self.api_port = free_port(), free_port()
        self.token = os.urandom(16).hex()
        self.log = open(Path(dir) / "chp.log", "w")
        assert CHP.exists(), f"{CHP} is missing: run `make deps`"
        self.proc = subprocess.Popen(
            [str(CHP), "--ip", "127.0.0.1", "--port", str(self.port), "--api-ip", "127.0.0.1",
             "--api-port", str(self.api_port), "--default-target", default_target],
            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.token}, stdout=self.log, stderr=self.log)
        wait_port(self.port, self.proc, "configurable-http-proxy")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_dump_dom(url, dir):
    """Loads url in headless Chromium and returns the rendered DOM."""
    out = subprocess.run(
        [tool("chromium"), "--headless", *CHROMIUM_ARGS, f"--user-data-dir={dir}/chromium-profile", "--dump-dom", url],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


VENV = ROOT / ".venv"
HUB_VERSIONS = ["5.5", "6.1"]


class JupyterHub:
    """A real JupyterHub (from .venv/hub-<version>, made by `make venv`) with its
    configurable-http-proxy on loopback: DummyAuthenticator users, the gateway
    registered as the service `dask-gateway` at gateway_url, users' tokens granted
    access to it, and an admin service for the test to drive the hub's REST API."""

    def __init__(self, dir, version, gateway_roles=()):
        self.gateway_roles = list(gateway_roles)
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.version = version
        self.port, self.hub_port, self.proxy_api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/hub/api"
        self.gateway_token = os.urandom(16).hex()
        self.admin_token = os.urandom(16).hex()
        self.service_token = os.urandom(16).hex()
        self.proc = None

    def start(self, gateway_url):
        exe = VENV / f"hub-{self.version}" / "bin" / "jupyterhub"
        assert exe.exists(), f"{exe} is missing: run `make venv`"
        (self.dir / "jupyterhub_config.py").write_text(f"""
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {self.hub_port}
c.JupyterHub.db_url = "sqlite:///{self.dir}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{self.dir}/cookie_secret"
c.JupyterHub.pid_file = "{self.dir}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"root"}}
# Servers are real jupyterhub-singleuser processes run as the hub's own
# OS user, each in its own temp home.
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = ["{VENV / f"hub-{self.version}" / "bin" / "jupyterhub-singleuser"}"]
c.Spawner.args = ["--allow-root"]
c.Spawner.default_url = "/tree"
c.SimpleLocalProcessSpawner.home_dir_template = "{self.dir}/home/{{username}}"
c.ConfigurableHTTPProxy.command = ["{CHP}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = "{os.urandom(16).hex()}"
c.ConfigurableHTTPProxy.pid_file = "{self.dir}/proxy.pid"
c.JupyterHub.services = [
    {{"name": "dask-gateway", "url": "{gateway_url}", "api_token": "{self.gateway_token}", "display": False,
      "oauth_no_confirm": True}},
    {{"name": "test-admin", "api_token": "{self.admin_token}"}},
    {{"name": "any-service", "api_token": "{self.service_token}"}},
]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service=dask-gateway"]}},
    {{"name": "test-admin", "scopes": ["admin:users", "admin:groups", "admin:servers", "tokens"], "services": ["test-admin"]}},
    {{"name": "dask-gateway", "scopes": {self.gateway_roles!r}, "services": ["dask-gateway"]}},
    {{"name": "gateway-users", "scopes": ["access:services!service=dask-gateway"], "services": ["any-service"]}},
]
""")
        self.log = open(self.dir / "hub.log", "w")
        self.proc = subprocess.Popen([str(exe), "-f", str(self.dir / "jupyterhub_config.py")],
                                     cwd=self.dir, stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.time() + 60
        while True:
            try:
                self.api("GET", "/")
                break
            except Exception:
                assert self.proc.poll() is None, "jupyterhub exited:\n" + (self.dir / "hub.log").read_text()[-3000:]
                assert time.time() < deadline, "jupyterhub not up after 60 s:\n" + (self.dir / "hub.log").read_text()[-3000:]
                time.sleep(0.2)
        return self

    def api(self, method, path, body=None, token=None):
        import json
        import urllib.request
        req = urllib.request.Request(self.api_url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token or self.admin_token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = resp.read()
            return json.loads(data) if data else None

    def add_user(self, name, groups=()):
        self.api("POST", f"/users/{name}")
        for g in groups:
            try:
                self.api("POST", f"/groups/{g}")
            except Exception:
                pass  # exists already
            self.api("POST", f"/groups/{g}/users", {"users": [name]})

    def token(self, user, scopes=None):
        body = {"note": "daskgate test"}
        if scopes is not None:
            body["scopes"] = scopes
        return self.api("POST", f"/users/{user}/tokens", body)

    def start_server(self, user, timeout=60):
        """Starts user's default server and waits until the hub says it is ready."""
        try:
            self.api("POST", f"/users/{user}/server")
        except Exception as e:  # 202 Accepted reads fine; 400 means it is running already
            if getattr(e, "code", None) != 400:
                raise
        self._wait_server(user, True, timeout)

    def stop_server(self, user, timeout=60):
        """Stops user's default server, as the culler does, and waits until it is gone."""
        self.api("DELETE", f"/users/{user}/server")
        self._wait_server(user, False, timeout)

    def _wait_server(self, user, ready, timeout):
        deadline = time.time() + timeout
        while True:
            servers = self.api("GET", f"/users/{user}")["servers"]
            if bool(servers.get("", {}).get("ready")) == ready and (ready or "" not in servers):
                return
            assert time.time() < deadline, f"{user}'s server not {'ready' if ready else 'gone'} after {timeout}s:\n" + \
                (self.dir / "hub.log").read_text()[-3000:]
            time.sleep(0.3)

    def revoke(self, user, token_id):
        self.api("DELETE", f"/users/{user}/tokens/{token_id}")

    def stop(self):
        """Stops the hub and its proxy (one process group), even if the hub died."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
        self.log.close()
