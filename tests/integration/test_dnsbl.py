"""DNSBL (R5, the manual's ORDB) against a real DNS server on loopback.

The server answers with tests/unit/dns_server.py's records (python3-dnslib), run here in a
thread on 127.0.0.1:<free UDP/TCP port> for as long as the module needs it, and counts the
queries it gets per name:
  2.0.0.127.bl.test A 127.0.0.2 + TXT "listed for testing"; 4.0.0.127.bl.test A 127.0.0.4, no TXT;
  3.0.0.127.bl.test A 127.0.0.3 + a TXT with CR LF in it; anything else NXDOMAIN.
"""

import collections
import importlib.util
import os
import socket
import struct
import threading
import time

import pytest

from delivery_peers import bind_udp_tcp
from tsubame_harness import Daemon, finish, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
DNS_SERVER = os.path.join(HERE, "..", "unit", "dns_server.py")


def load_answer():
    try:
        spec = importlib.util.spec_from_file_location("tsubame_test_dns_server", DNS_SERVER)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except ImportError as e:
        pytest.skip("python3-dnslib not installed: %s" % e)
    return mod


class DNSServer:
    def __init__(self, mod):
        from dnslib import DNSRecord
        self.mod, self.DNSRecord = mod, DNSRecord
        self.queries = collections.Counter()
        self.stop = threading.Event()
        self.udp, self.tcp, self.port = bind_udp_tcp()
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        self.threads = [threading.Thread(target=self.serve_udp, daemon=True),
                        threading.Thread(target=self.serve_tcp, daemon=True)]
        for t in self.threads:
            t.start()

    def note(self, data):
        try:
            self.queries[str(self.DNSRecord.parse(data).q.qname).rstrip(".").lower()] += 1
        except Exception:
            pass

    def serve_udp(self):
        while not self.stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            self.note(data)
            out = self.mod.answer(data)
            if out is not None:
                self.udp.sendto(out, peer)

    def serve_tcp(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(2.0)
            try:
                hdr = conn.recv(2, socket.MSG_WAITALL)
                if len(hdr) == 2:
                    data = conn.recv(struct.unpack("!H", hdr)[0], socket.MSG_WAITALL)
                    self.note(data)
                    out = self.mod.answer(data)
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                pass
            finally:
                conn.close()

    def count(self, ip, zone="bl.test"):
        return self.queries[".".join(reversed(ip.split("."))) + "." + zone]

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=2)
        self.udp.close()
        self.tcp.close()


@pytest.fixture(scope="module")
def dns(base_dir):
    srv = DNSServer(load_answer())
    yield srv
    srv.close()


def dnsbl_params(port, **extra):
    p = {"dnsbl": "bl.test", "dns_servers": "127.0.0.1:%d" % port, "dnsbl_exempt": "127.0.0.3",
         "dns_timeout": "2"}
    p.update(extra)
    return p


@pytest.fixture(scope="module")
def site(base_dir, dns):
    d = Daemon(base_dir, name="dnsbl", params=dnsbl_params(dns.port))
    d.start()
    yield d
    finish(d)


def test_listed_client_gets_554_with_txt(site, dns):
    with site.session(source="127.0.0.2", timeout=10) as s:
        g = s.greeting
        assert g.code == 554, g
        assert g.first == ("5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test; "
                           "listed for testing"), g
        s.expect("EHLO client.example", "503 5.5.1")
        s.expect("HELO client.example", "503 5.5.1")
        s.expect("MAIL FROM:<a@client.test>", "503 5.5.1")
        s.expect("RCPT TO:<demo@example.test>", "503 5.5.1")
        s.expect("DATA", "503 5.5.1")
        s.expect("NOOP", "503 5.5.1")
        s.expect("QUIT", "221")
        assert s.wait_closed(5)
    assert dns.count("127.0.0.2") >= 1


def test_listed_without_txt_gets_generic_reason(site):
    with site.session(source="127.0.0.4", timeout=10) as s:
        assert s.greeting.startswith("554 5.7.1 Service unavailable; client [127.0.0.4] blocked using bl.test; "
                                     "listed by bl.test"), s.greeting
        s.expect("QUIT", "221")


def test_not_listed_gets_220(site, dns):
    before = dns.count("127.0.0.5")
    with site.session(source="127.0.0.5", timeout=10) as s:
        assert s.greeting.startswith("220 "), s.greeting
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<demo@example.test>", "250")
        s.expect("QUIT", "221")
    assert dns.count("127.0.0.5") > before, "no lookup for 127.0.0.5: %r" % dns.queries


def test_exempt_client_not_looked_up(site, dns):
    # 127.0.0.3 is listed in the zone (with a TXT full of CR LF), but exempt
    with site.session(source="127.0.0.3", timeout=10) as s:
        assert s.greeting.startswith("220 "), s.greeting
        s.ehlo()
        s.expect("QUIT", "221")
    assert dns.count("127.0.0.3") == 0, "exempt client was looked up: %r" % dns.queries


def test_txt_with_crlf_cannot_inject_replies(base_dir, dns):
    d = Daemon(base_dir, name="dnsbl-crlf", params=dnsbl_params(dns.port, dnsbl_exempt="127.0.0.1"))
    d.start()
    try:
        with d.session(source="127.0.0.3", timeout=10) as s:
            g = s.greeting
            assert g.code == 554 and len(g.lines) == 1, g
            assert "blocked using bl.test" in g.first and "\r" not in g.first and "\n" not in g.first, g
            s.expect("QUIT", "221")
            assert s.wait_closed(5)
            assert b"250 injected" not in s.buf, s.buf
    finally:
        finish(d)


def test_dns_server_down_greets_within_timeout(base_dir):
    dead = free_port()   # nothing listens there
    d = Daemon(base_dir, name="dnsbl-down", params=dnsbl_params(dead, dns_timeout="1"))
    d.start(timeout=30)
    try:
        t = time.monotonic()
        with d.session(source="127.0.0.2", timeout=10) as s:
            took = time.monotonic() - t
            assert s.greeting.startswith("220 "), s.greeting
            s.expect("QUIT", "221")
        assert took < 5, "greeting after %.1fs with dns_timeout = 1" % took
    finally:
        finish(d)


def test_dns_server_silent_greets_within_timeout(base_dir):
    """A server that never answers (a bound UDP socket that reads nothing): bounded by dns_timeout."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    d = Daemon(base_dir, name="dnsbl-silent", params=dnsbl_params(port, dns_timeout="1",
                                                                             dnsbl_exempt="127.0.0.1 127.0.0.3"))
    try:
        d.start(timeout=30)
        t = time.monotonic()
        with d.session(source="127.0.0.2", timeout=10) as s:
            took = time.monotonic() - t
            assert s.greeting.startswith("220 "), s.greeting
            s.expect("QUIT", "221")
        assert took < 5, "greeting after %.1fs with dns_timeout = 1" % took
    finally:
        silent.close()
        finish(d)
