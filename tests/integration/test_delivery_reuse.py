"""D1 end to end: connection reuse, the per-destination concurrency limit, and the routing tables
reread on SIGHUP, with a real DNS server (dnslib) and SMTP sinks on 127.0.0.x (delivery_peers.py).
What the sinks count is the evidence: connections, sessions open at once, arrival times."""
import os
import signal
import time

import pytest

from delivery_peers import DnsServer, Sink
from test_delivery import DEAD_DNS, body, fast, site, wait_log, wait_queue_empty
from tsubame_harness import free_port, make_cert

ZONE = {
    "reuse.test": [("MX", 10, "mx.reuse.test")],
    "mx.reuse.test": [("A", "127.0.0.21")],
    "slow.test": [("MX", 10, "mx.slow.test")],
    "mx.slow.test": [("A", "127.0.0.22")],
    "fast.test": [("MX", 10, "mx.fast.test")],
    "mx.fast.test": [("A", "127.0.0.23")],
    "close.test": [("A", "127.0.0.24")],
    "stale.test": [("A", "127.0.0.25")],
    "hx.test": [("MX", 10, "mx.hx.test")],
    "mx.hx.test": [("A", "127.0.0.99")],      # nothing listens: the hosts table says where
}


@pytest.fixture(scope="module")
def dns():
    d = DnsServer(ZONE)
    yield d
    d.stop()



@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("peer-cert")), cn="sink.test")


def delivery_lines(d, pattern):
    return [l for l in d.log("delivery").splitlines() if pattern in l]


def test_sequential_messages_share_one_connection(make_daemon, dns, sinks):
    sink = sinks("127.0.0.21")
    d = site(make_daemon, fast(dns.addr, sink.port))
    n = 5
    for i in range(n):
        d.send("user%d@reuse.test" % i, body("seq%d" % i))
        sink.wait_messages(i + 1)
    wait_log(d, r"event=delivered to=<user%d@reuse\.test>" % (n - 1))
    assert sink.connections == 1, sink.transcript
    assert len(sink.commands("EHLO")) == 1
    # RFC 5321 4.1.1.5: every reused session starts its transaction with RSET
    assert len(sink.commands("RSET")) == n - 1, sink.transcript
    assert len(delivery_lines(d, "conn=reused")) == n - 1, d.log("delivery")
    assert len(delivery_lines(d, "conn=new")) == 1
    got = sorted(m["rcpts"][0].split(">")[0] for m in sink.messages)
    assert got == ["TO:<user%d@reuse.test" % i for i in range(n)]
    wait_queue_empty(d)


def test_reuse_keeps_tls_and_auth(make_daemon, dns, sinks, cert):
    """A smart host with STARTTLS and AUTH: the second message rides the same encrypted,
    authenticated session (one handshake, one AUTH)."""
    sink = sinks("127.0.0.10", modes=("auth", "starttls"), cert=cert[0], key=cert[1])
    d = site(make_daemon, fast(dns.addr, 2525, delivery_mode="smarthost",
                               smarthost="127.0.0.10:%d" % sink.port,
                               smarthost_auth_user="tester", smarthost_auth_password="s3cret",
                               deliver_processes=1))   # two domains: one process, one cache
    d.send("one@nx.test", body("tls1"))
    sink.wait_messages(1)
    d.send("two@elsewhere.test", body("tls2"))   # another domain, the same smart host session
    sink.wait_messages(2)
    assert all(m["tls"] for m in sink.messages)
    assert sink.connections == 1, sink.transcript
    assert len(sink.commands("STARTTLS")) == 1 and len(sink.commands("AUTH")) == 1
    wait_log(d, r"event=delivered to=<two@elsewhere\.test> .*conn=reused")
    wait_queue_empty(d)


def test_burst_limited_and_reused(make_daemon, dns, sinks):
    """8 messages at once, destination_concurrency 2: never more than 2 sessions, and the waiting
    messages go over the connections the first ones leave idle."""
    sink = sinks("127.0.0.21")
    sink.data_delay = 0.2
    d = site(make_daemon, fast(dns.addr, sink.port, destination_concurrency=2))
    n = 8
    for i in range(n):
        d.send("burst%d@reuse.test" % i, body("burst%d" % i))
    sink.wait_messages(n, timeout=30)
    wait_queue_empty(d, timeout=15)
    assert sink.max_active <= 2, sink.max_active
    assert sink.max_in_txn <= 2
    assert sink.connections <= 2 < n, sink.connections
    assert len(delivery_lines(d, "conn=reused")) >= n - 2, d.log("delivery")


def test_idle_connection_closed_by_peer(make_daemon, dns, sinks):
    sink = sinks("127.0.0.24", modes=("closeafterdata",))
    d = site(make_daemon, fast(dns.addr, sink.port))
    d.send("a@close.test", body("close1"))
    sink.wait_messages(1)
    # the sink hangs up 0.3 s after the message: the deliver process notices it while idle
    wait_log(d, r"event=conn_cache_drop relay=[^ ]*127\.0\.0\.24", name="main")
    d.send("b@close.test", body("close2"))
    sink.wait_messages(2)
    wait_log(d, r"event=delivered to=<b@close\.test> .*conn=new")
    assert sink.connections == 2
    assert not sink.commands("QUIT") and not sink.commands("RSET"), sink.transcript
    assert "event=deferred" not in d.log("delivery")
    wait_queue_empty(d)


def test_stale_cached_connection_reconnects(make_daemon, dns, sinks):
    """The cached session answers RSET with 421: the message goes over a new connection at once,
    and that is not a delivery failure (no deferral, no retry delay)."""
    sink = sinks("127.0.0.25", modes=("rset421",))
    d = site(make_daemon, fast(dns.addr, sink.port, retry_interval=60))
    d.send("a@stale.test", body("stale1"))
    sink.wait_messages(1)
    t0 = time.monotonic()
    d.send("b@stale.test", body("stale2"))
    sink.wait_messages(2, timeout=10)
    assert time.monotonic() - t0 < 10
    wait_log(d, r"qid=\S+ event=reuse_failed relay=[^ ]*127\.0\.0\.25\]?:%d reply=421 " % sink.port, name="main")
    wait_log(d, r"event=delivered to=<b@stale\.test> .*conn=new")
    assert sink.connections == 2     # the first (gone stale when reused), then a new one
    assert len(sink.commands("RSET")) == 1
    assert "event=deferred" not in d.log("delivery")
    wait_queue_empty(d)


def test_destination_concurrency_one(make_daemon, dns, sinks):
    """destination_concurrency = 1: the slow domain never has two sessions at once, while the
    other domain's mail goes on beside it and is done long before."""
    port = free_port("127.0.0.22")
    slow = sinks("127.0.0.22", port)
    fast_sink = sinks("127.0.0.23", port)
    slow.data_delay = 1.0
    fast_sink.data_delay = 0.1
    # cache off: each delivery is its own session, so sessions at once = deliveries at once
    d = site(make_daemon, fast(dns.addr, port, destination_concurrency=1, smtp_connection_cache_size=0,
                               smtp_timeout=10))
    n = 4
    for i in range(n):
        d.send("s%d@slow.test" % i, body("slow%d" % i))
        d.send("f%d@fast.test" % i, body("fast%d" % i))
    fast_sink.wait_messages(n, timeout=20)
    slow.wait_messages(n, timeout=30)
    wait_queue_empty(d, timeout=15)
    assert slow.max_active == 1, slow.max_active
    assert fast_sink.max_active == 1, fast_sink.max_active
    assert slow.connections == n and fast_sink.connections == n
    # the fast domain did not wait behind the slow one
    assert fast_sink.messages[-1]["time"] < slow.messages[2]["time"], (
        [m["time"] for m in fast_sink.messages], [m["time"] for m in slow.messages])
    assert "conn=reused" not in d.log("delivery")


def test_sighup_rereads_gateway_and_hosts_tables(make_daemon, dns, sinks):
    port = free_port("127.0.0.26")
    gw_old, gw_new = sinks("127.0.0.26", port), sinks("127.0.0.27", port)
    hx_old, hx_new = sinks("127.0.0.28", port), sinks("127.0.0.29", port)
    d = site(make_daemon, fast(dns.addr, port), tables={
        "gateways": "hup.test,127.0.0.26,%d\n" % port,
        "hosts": "mx.hx.test 127.0.0.28:%d\n" % port,
    })
    d.send("u1@hup.test", body("hup1"))
    d.send("u1@hx.test", body("hx1"))          # MX answer cached with the hosts table's address
    gw_old.wait_messages(1)
    hx_old.wait_messages(1)

    d.write_table("gateways", "' moved\nhup.test,127.0.0.27,%d\n" % port)
    d.write_table("hosts", "mx.hx.test 127.0.0.29:%d\n" % port)
    d.signal(signal.SIGHUP)
    wait_log(d, r"deliver\d.*event=routing_reloaded gateways=1 hosts=1", name="main", n=2)
    d.send("u2@hup.test", body("hup2"))
    d.send("u2@hx.test", body("hx2"))          # the MX cache was emptied: the new address
    gw_new.wait_messages(1)
    hx_new.wait_messages(1)

    # a table that does not parse: the error with file:line, and the last good tables stay
    d.write_table("gateways", "hup.test,127.0.0.26,%d\nbad.test,127.0.0.26,99999\n" % port)
    d.signal(signal.SIGHUP)
    hits = wait_log(d, r"event=reload_failed what=routing action=kept_old", name="main", n=2)
    assert "gateways:2:" in hits[0], hits[0]
    d.send("u3@hup.test", body("hup3"))
    gw_new.wait_messages(2)
    wait_queue_empty(d)
    time.sleep(0.3)
    assert len(gw_old.messages) == 1 and len(hx_old.messages) == 1
    assert len(gw_new.messages) == 2 and len(hx_new.messages) == 1


def test_sighup_brings_up_remote_delivery(make_daemon, sinks):
    """A gateway table broken at start leaves remote delivery down (mail waits); the fixed table
    and a SIGHUP bring it up."""
    sink = sinks("127.0.0.26")
    d = site(make_daemon, fast(DEAD_DNS, sink.port, retry_interval=1),
             tables={"gateways": "up.test,127.0.0.26,0\n"})
    wait_log(d, r"event=remote_delivery_unavailable", name="main", n=2)
    d.send("u@up.test", body("up"))
    time.sleep(1.5)
    assert not sink.messages and not sink.connections
    d.write_table("gateways", "up.test,127.0.0.26,%d\n" % sink.port)
    d.signal(signal.SIGHUP)
    wait_log(d, r"event=remote_delivery_available", name="main", n=2)
    sink.wait_messages(1, timeout=20)
    wait_queue_empty(d)
