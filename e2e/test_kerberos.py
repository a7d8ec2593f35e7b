"""Kerberos authentication against a real MIT KDC with the real client (pykerberos):
a ticket from kinit gets in, and the client's mutual-authentication check of the
gateway's reply passes; no ticket, an expired ticket or a bogus token does not."""

import base64
import os
import time
import urllib.error
import urllib.request

import pytest
from dask_gateway import Gateway
from dask_gateway.auth import KerberosAuth

from realtools import KDC


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    kdc = KDC(tmp_path_factory.mktemp("kdc")).start()
    kdc.add_user("alice", "alice-pw")
    kdc.add_service("HTTP/localhost", kdc.dir / "http.keytab")
    yield kdc
    kdc.stop()


@pytest.fixture
def kerberos_gateway(gateway_factory, realm, monkeypatch):
    gw = gateway_factory({"auth": {"type": "kerberos", "keytab": str(realm.dir / "http.keytab")}})
    for k in ("KRB5_CONFIG", "KRB5_KDC_PROFILE"):
        monkeypatch.setenv(k, realm.env()[k])
    # The client asks for HTTP@<host of the URL>: the keytab is for HTTP/localhost.
    gw.kerberos_address = gw.address.replace("127.0.0.1", "localhost")
    return gw


def test_ticket_gets_in_and_the_reply_is_mutual(kerberos_gateway, realm, monkeypatch):
    realm.kinit("alice", "alice-pw", ccache="alice")
    monkeypatch.setenv("KRB5CCNAME", realm.env("alice")["KRB5CCNAME"])
    with Gateway(kerberos_gateway.kerberos_address, auth=KerberosAuth()) as gw:
        assert gw.list_clusters() == []
        cluster = gw.new_cluster()
        try:
            (info,) = gw.list_clusters()
            assert info.name == cluster.name
        finally:
            cluster.shutdown()


def test_no_ticket_is_refused(kerberos_gateway, realm, monkeypatch):
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{realm.dir}/cc-empty")
    with Gateway(kerberos_gateway.kerberos_address, auth=KerberosAuth()) as gw:
        with pytest.raises(Exception):
            gw.list_clusters()


def test_expired_ticket_is_refused(kerberos_gateway, realm, monkeypatch):
    realm.run("kinit", "-l", "3s", "alice", input="alice-pw\n", ccache="short")
    time.sleep(4)
    monkeypatch.setenv("KRB5CCNAME", realm.env("short")["KRB5CCNAME"])
    with Gateway(kerberos_gateway.kerberos_address, auth=KerberosAuth()) as gw:
        with pytest.raises(Exception):
            gw.list_clusters()


@pytest.mark.parametrize("token", [b"not a token", b"\x60\x03\x06\x01\x00", os.urandom(300)])
def test_bogus_token_is_a_401_not_a_500(kerberos_gateway, token):
    req = urllib.request.Request(f"{kerberos_gateway.address}/api/v1/clusters/",
                                 headers={"Authorization": "Negotiate " + base64.b64encode(token).decode()})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    assert e.value.headers["WWW-Authenticate"] == "Negotiate"
