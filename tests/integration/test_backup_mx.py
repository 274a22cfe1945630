"""E2 backup MX end to end: we are MX 20 of a customer domain (a relay domain without a host);
its MX 10 is a sink on loopback that is down, then up.  The message waits in our queue (deferred,
never bounced) and is delivered once when the primary returns.  MX lists that lead only to
ourselves are a configuration error: the message bounces 5.4.6, it never loops.

Everything on 127.0.0.6x with one port number: our daemon listens on 127.0.0.62 (the address of
backup.isp.test), the sinks on the other addresses, delivery_port is that port."""
import email
import email.policy
import re
import time

import pytest

from delivery_peers import DnsServer, Sink
from tsubame_harness import free_port, wait_log as harness_wait_log

OURS = "127.0.0.62"
PRIMARY = "127.0.0.61"
WORSE = "127.0.0.63"
SENDERS = "127.0.0.64"

ZONE = {
    # the customer: primary MX 10, us MX 20 (named after the ISP, not our hostname: found by address)
    "customer.test": [("MX", 10, "primary.customer.test"), ("MX", 20, "backup.isp.test")],
    "primary.customer.test": [("A", PRIMARY)],
    "backup.isp.test": [("A", OURS)],
    # only us: mail for it can go nowhere but back to us
    "loop.test": [("MX", 10, "backup.isp.test")],
    # we are the best MX (5); an MX 10 answers but is worse than us: never used
    "worse.test": [("MX", 5, "mx.worse.test"), ("MX", 10, "other.worse.test")],
    "mx.worse.test": [("A", OURS)],
    "other.worse.test": [("A", WORSE)],
    # no MX, and its A record is us (implicit MX)
    "implicit.test": [("A", OURS)],
    # where bounces go
    "senders.test": [("MX", 10, "mx.senders.test")],
    "mx.senders.test": [("A", SENDERS)],
}

SENDER = "alice@senders.test"


@pytest.fixture(scope="module")
def dns():
    d = DnsServer(ZONE)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def port():
    return free_port(OURS)



def backup_site(make_daemon, dns, port, **extra):
    params = {
        "dns_servers": dns.addr,
        "delivery_port": str(port),
        "retry_interval": "1",
        "smtp_timeout": "2",
        "smtp_connect_timeout": "2",
    }
    params.update({k: str(v) for k, v in extra.items()})
    d = make_daemon(params=params, start=False, host=OURS, port=port)
    d.write_table("relaydomains", "# E2: domains we are a backup MX for\n"
                                  "customer.test\nloop.test\nworse.test\nimplicit.test\n")
    d.start()
    return d


def send(d, rcpt, tok):
    body = ("From: %s\r\nTo: %s\r\nSubject: backup mx %s\r\nMessage-ID: <%s@senders.test>\r\n\r\n%s\r\n"
            % (SENDER, rcpt, tok, tok, tok)).encode()
    return d.send(rcpt, body, sender=SENDER)


def wait_log(d, pattern, name="delivery", timeout=15.0, n=1):
    return harness_wait_log(d, pattern, name, timeout, n)


def queue_list(d):
    return d.ctl("queue", "list").out


def wait_queue_empty(d, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = queue_list(d).strip()
        if not out or out == "0 messages":
            return
        time.sleep(0.1)
    raise AssertionError("queue not empty:\n%s\n%s" % (queue_list(d), d.log("delivery")))


def connects(d):
    return len(re.findall(r"event=connect ", d.log("connect")))


def test_primary_down_then_up_delivered_once(make_daemon, dns, port, sinks):
    d = backup_site(make_daemon, dns, port)
    bounces = sinks(SENDERS, port)
    tok = "tokbackup%d" % port
    send(d, "bob@customer.test", tok)
    # the primary refuses connections: deferred, kept, and never tried at us or anything worse
    wait_log(d, r"event=deferred to=<bob@customer\.test> relay=[^ ]*%s" % re.escape(PRIMARY))
    time.sleep(2.5)   # a few retries (retry_interval 1 s)
    assert "event=bounced" not in d.log("delivery")
    assert re.search(r"bob@customer\.test", queue_list(d)), queue_list(d)
    assert not bounces.messages
    assert not re.search(r"relay=[^ ]*%s" % re.escape(OURS), d.log("delivery")), d.log("delivery")
    # the primary comes back; the administrator (or the customer's ETRN) flushes the queue
    primary = sinks(PRIMARY, port)
    d.ctl("queue", "flush")
    msgs = primary.wait_messages(1)
    assert [r.split(">")[0] for r in msgs[0]["rcpts"]] == ["TO:<bob@customer.test"]
    assert msgs[0]["mail_from"].startswith("FROM:<%s>" % SENDER)
    assert tok.encode() in msgs[0]["data"]
    wait_log(d, r"event=delivered to=<bob@customer\.test> relay=[^ ]*%s" % re.escape(PRIMARY))
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(primary.messages) == 1, "delivered more than once"
    assert not bounces.messages


def test_primary_up_goes_straight_through(make_daemon, dns, port, sinks):
    d = backup_site(make_daemon, dns, port)
    primary = sinks(PRIMARY, port)
    send(d, "carol@customer.test", "tokstraight")
    primary.wait_messages(1)
    wait_queue_empty(d)


def dsn_status(msg_bytes):
    msg = email.message_from_bytes(msg_bytes, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    parts = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    blocks = parts[0].get_payload()
    return [{k.lower(): v.strip() for k, v in b.items()} for b in blocks[1:]]


@pytest.mark.parametrize("domain", ["loop.test", "worse.test", "implicit.test"])
def test_mx_to_self_is_an_error_not_a_loop(make_daemon, dns, port, sinks, domain):
    """We are the best (or only) MX: 5.4.6 "loops back to myself", bounced at once, never sent to
    ourselves and never to a worse MX."""
    d = backup_site(make_daemon, dns, port)
    bounces = sinks(SENDERS, port)
    worse = sinks(WORSE, port)
    before = connects(d)
    tok = "tokloop%s" % domain.split(".")[0]
    send(d, "dave@" + domain, tok)
    wait_log(d, r"event=failed to=<dave@%s> .*dsn=5\.4\.6" % re.escape(domain))
    wait_log(d, r"event=bounced to=<dave@%s>" % re.escape(domain))
    assert "loops back to myself" in d.log("delivery")
    msgs = bounces.wait_messages(1)
    assert msgs[0]["rcpts"][0].startswith("TO:<%s>" % SENDER)
    recips = dsn_status(msgs[0]["data"])
    assert recips[0]["action"] == "failed" and recips[0]["status"] == "5.4.6", recips
    assert re.search(r"event=mx_loop domain=%s" % re.escape(domain), d.log()), d.log()[-2000:]
    wait_queue_empty(d)
    time.sleep(0.5)
    # our one session, nothing else: the message never came back to us
    assert connects(d) == before + 1, d.log("connect")
    assert not worse.messages and worse.connections == 0


def test_backup_mx_is_not_an_open_relay(make_daemon, dns, port):
    d = backup_site(make_daemon, dns, port)
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<%s>" % SENDER, "250")
        r = s.cmd("RCPT TO:<x@elsewhere.test>")
        assert r.code == 550 and r.enh() == "5.7.1", r
        r = s.cmd("RCPT TO:<x@customer.test>")
        assert r.code == 250, r
        # a subdomain of a relay domain is not the relay domain
        r = s.cmd("RCPT TO:<x@sub.customer.test>")
        assert r.code == 550 and r.enh() == "5.7.1", r
