"""Delivery status notifications (issue 4, D5): the DSN extension (RFC 3461) end to end — NOTIFY,
RET, ENVID and ORCPT accepted, kept, honoured in failure, delay and success notices and passed on
to peers that offer DSN — the one delay warning, and the administrator's copies of bounces.

Peers are real: a dnslib DNS server and SMTP sinks on 127.0.0.x (delivery_peers.py).  Every
notice is parsed with Python's email package."""
import email
import email.policy
import re
import smtplib
import time

import pytest

from tsubame_harness import wait_log

from delivery_peers import DnsServer, Sink

ZONE = {
    "amx.test": [("A", "127.0.0.5")],                  # the sink
    "dsn.test": [("A", "127.0.0.12")],                 # a sink that offers DSN
    "dead.test": [("MX", 10, "mx.dead.test")],
    "mx.dead.test": [("A", "127.0.0.11")],             # nothing listens there
}


@pytest.fixture(scope="module")
def dns():
    d = DnsServer(ZONE, ())
    yield d
    d.stop()



def site(make_daemon, dns_addr, port, **extra):
    params = {
        "dns_servers": dns_addr,
        "delivery_port": str(port),
        "retry_interval": "1",
        "smtp_timeout": "2",
        "smtp_connect_timeout": "2",
        "auth_plaintext": "yes",
    }
    params.update({k: str(v) for k, v in extra.items()})
    d = make_daemon(params=params, start=False)
    d.write_table("relay", "127.0.0.1 true\n")
    d.start()
    return d


def body(tok):
    return ("From: demo@example.test\r\nTo: someone\r\nSubject: dsn %s\r\nMessage-ID: <%s@example.test>\r\n\r\n"
            "first body line %s\r\nsecond body line\r\n" % (tok, tok, tok)).encode()


def send_demo(d, rcpts, data, mail_options=(), rcpt_options=()):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.has_extn("dsn")
        s.login("demo@example.test", "demo-pass")
        refused = s.sendmail("demo@example.test", rcpts, data, list(mail_options), list(rcpt_options))
        assert not refused, refused


def notices(d, user="demo@example.test", timeout=15.0, n=1):
    """The DSNs in user's Maildir (Return-Path <>, multipart/report), parsed."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for f in d.message_files(user):
            with open(f, "rb") as fh:
                msg = email.message_from_binary_file(fh, policy=email.policy.default)
            if msg["Return-Path"] == "<>" and msg.get_content_type() == "multipart/report":
                found.append(msg)
        if len(found) >= n or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def report(msg):
    """(per-message fields, [per-recipient fields]) of the message/delivery-status part."""
    parts = msg.get_payload()
    assert msg.get_param("report-type") == "delivery-status"
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1
    blocks = status[0].get_payload()
    return blocks[0], blocks[1:]


def third_part(msg):
    return msg.get_payload()[2]



def test_parameters_refused_precisely(make_daemon, dns, sinks):
    d = site(make_daemon, dns.addr, 25)
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<x@client.test> RET=SOME", "501 5.5.4")
        s.expect("MAIL FROM:<x@client.test> ENVID=a+zz", "501 5.5.4")
        s.expect("MAIL FROM:<x@client.test> RET=HDRS ENVID=QQ+2B1", "250 2.1.0")
        s.expect("RCPT TO:<bob@example.test> NOTIFY=NEVER,DELAY", "501 5.5.4")
        s.expect("RCPT TO:<bob@example.test> NOTIFY=SUCCESS ORCPT=nosemicolon", "501 5.5.4")
        s.expect("RCPT TO:<bob@example.test> RET=FULL", "555 5.5.4")
        s.expect("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40example.test", "250 2.1.5")
    assert d.running()


def test_success_notice_for_local_delivery(make_daemon, dns, sinks):
    """NOTIFY=SUCCESS to a mailbox: Action: delivered, with ENVID and ORCPT echoed."""
    d = site(make_daemon, dns.addr, 25)
    send_demo(d, ["bob@example.test"], body("success"), mail_options=["RET=HDRS", "ENVID=QQ+2B314"],
              rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob+40example.test"])
    got = notices(d)
    assert len(got) == 1, d.log()
    msg = got[0]
    assert msg["Subject"] == "Successful Mail Delivery Report"
    per_msg, per_rcpt = report(msg)
    assert per_msg["Original-Envelope-Id"] == "QQ+314"
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Action"] == "delivered"
    assert r["Status"].startswith("2.")
    assert r["Final-Recipient"] == "rfc822; bob@example.test"
    assert r["Original-Recipient"] == "rfc822;Bob@example.test"
    assert third_part(msg).get_content_type() == "text/rfc822-headers"
    assert len(d.message_files("bob@example.test")) == 1


def test_no_notice_without_notify_success(make_daemon, dns, sinks):
    d = site(make_daemon, dns.addr, 25)
    send_demo(d, ["bob@example.test"], body("plain"))
    deadline = time.monotonic() + 10
    while not d.message_files("bob@example.test") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(d.message_files("bob@example.test")) == 1
    time.sleep(1.0)
    assert notices(d, timeout=0) == []


def test_relayed_notice_for_peer_without_dsn(make_daemon, dns, sinks):
    sink = sinks("127.0.0.5")
    d = site(make_daemon, dns.addr, sink.port)
    send_demo(d, ["r1@amx.test"], body("relayed"), rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    sink.wait_messages(1)
    # the peer does not offer DSN: the parameters are not sent to it ...
    assert all("NOTIFY" not in c for c in sink.commands("RCPT"))
    # ... and we report "relayed" ourselves (RFC 3461 6.2.6)
    got = notices(d)
    assert len(got) == 1
    _, per_rcpt = report(got[0])
    assert per_rcpt[0]["Action"] == "relayed"
    assert per_rcpt[0]["Remote-MTA"] == "dns; amx.test"


def test_parameters_passed_to_dsn_peer(make_daemon, dns, sinks):
    sink = sinks("127.0.0.12", modes=("dsn",))
    d = site(make_daemon, dns.addr, sink.port, aliases_file="aliases")
    d.write_table("aliases", "fwd@example.test far@dsn.test\n")
    d.signal(__import__("signal").SIGHUP)
    time.sleep(1.0)
    send_demo(d, ["x@dsn.test", "fwd@example.test"], body("pass"), mail_options=["RET=HDRS", "ENVID=env+2B1"],
              rcpt_options=["NOTIFY=SUCCESS,DELAY"])
    sink.wait_messages(1)
    mail = sink.commands("MAIL")
    assert any("RET=HDRS" in m and "ENVID=env+2B1" in m for m in mail), mail
    rcpt = sink.commands("RCPT")
    x = [c for c in rcpt if "<x@dsn.test>" in c][0]
    assert "NOTIFY=SUCCESS,DELAY" in x and "ORCPT" not in x, x
    # the alias changed the address: the original one goes on as ORCPT
    far = [c for c in rcpt if "<far@dsn.test>" in c][0]
    assert "ORCPT=rfc822;fwd@example.test" in far, far
    # a peer that took NOTIFY reports success itself: nothing from us
    time.sleep(1.5)
    assert notices(d, timeout=0) == []


def test_notify_never_suppresses_the_bounce(make_daemon, dns, sinks):
    sink = sinks("127.0.0.5")
    d = site(make_daemon, dns.addr, sink.port)
    send_demo(d, ["perm1@amx.test", "perm2@amx.test"], body("never"),
              rcpt_options=[])  # perm2 asks for the default
    got = notices(d)
    assert len(got) == 1
    # now NEVER for both: no notice at all
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.ehlo("client.test")
        s.login("demo@example.test", "demo-pass")
        s.mail("demo@example.test")
        for r in ("perm3@amx.test", "perm4@amx.test"):
            assert s.rcpt(r, ["NOTIFY=NEVER"])[0] == 250
        assert s.data(body("never2"))[0] == 250
    wait_log(d, r"event=notice_suppressed kind=failure to=<perm4@amx\.test> notify=8")
    time.sleep(1.0)
    assert len(notices(d, timeout=0)) == 1


@pytest.mark.parametrize("ret,ctype,has_body", [
    ("RET=FULL", "message/rfc822", True),
    ("RET=HDRS", "text/rfc822-headers", False),
    (None, "message/rfc822", True),           # no RET: headers and bounce_notice_lines lines
])
def test_ret_decides_what_comes_back(make_daemon, dns, sinks, ret, ctype, has_body):
    sink = sinks("127.0.0.5")
    d = site(make_daemon, dns.addr, sink.port)
    send_demo(d, ["perm@amx.test"], body("ret"), mail_options=[ret] if ret else [])
    got = notices(d)
    assert len(got) == 1
    msg = got[0]
    assert msg["Subject"].startswith("Undelivered Mail Returned to Sender")
    _, per_rcpt = report(msg)
    r = per_rcpt[0]
    assert r["Action"] == "failed" and r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; amx.test"
    assert r["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    part = third_part(msg)
    assert part.get_content_type() == ctype
    raw = part.as_bytes()
    assert b"Subject: dsn ret" in raw
    assert (b"first body line ret" in raw) == has_body


def test_ret_full_over_the_size_limit_returns_headers(make_daemon, dns, sinks):
    sink = sinks("127.0.0.5")
    d = site(make_daemon, dns.addr, sink.port, bounce_size_limit=100)
    send_demo(d, ["perm@amx.test"], body("big"), mail_options=["RET=FULL"])
    got = notices(d)
    assert third_part(got[0]).get_content_type() == "text/rfc822-headers"


def test_delay_warning_once(make_daemon, dns, sinks):
    """A recipient that keeps failing temporarily: one warning (Action: delayed), however many
    retries, and not again after a restart; NOTIFY without DELAY gets none."""
    d = site(make_daemon, dns.addr, 25, delay_warning_time=2, retry_noanswer_period="1h")
    send_demo(d, ["a@dead.test"], body("delay"))
    send_demo(d, ["b@dead.test"], body("nodelay"), rcpt_options=["NOTIFY=FAILURE"])
    got = notices(d, timeout=20)
    assert len(got) == 1, d.log()
    msg = got[0]
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    _, per_rcpt = report(msg)
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Final-Recipient"] == "rfc822; a@dead.test"
    assert r["Action"] == "delayed"
    assert r["Status"].startswith("4.")
    assert r["Will-Retry-Until"]
    assert third_part(msg).get_content_type() == "text/rfc822-headers"
    time.sleep(3.0)   # several more retries
    d.stop()
    d.start()
    time.sleep(3.0)
    assert len(notices(d, timeout=0)) == 1
    assert len(re.findall(r"event=notice kind=delay", d.log())) == 1
    # the administrator sees the DSN state of each message
    shows = [d.ctl("queue", "show", line.split()[0]).out for line in d.ctl("queue", "list").out.splitlines()
             if "dead.test" in line]
    a = [x for x in shows if "a@dead.test" in x][0]
    b = [x for x in shows if "b@dead.test" in x][0]
    assert "delay-warning: done" in a, a
    assert "notify=FAILURE" in b, b


def test_administrator_copy(make_daemon, dns, sinks):
    """bounce_admin_copy: the administrator gets a headers-only copy of every bounce; never a copy
    of a bounce to the administrator's own message."""
    sink = sinks("127.0.0.5")
    d = site(make_daemon, dns.addr, sink.port, bounce_admin_copy="yes", postmaster_address="bob@example.test")
    send_demo(d, ["perm@amx.test"], body("copy"), mail_options=["RET=FULL"])
    assert len(notices(d)) == 1
    copies = notices(d, "bob@example.test")
    assert len(copies) == 1
    c = copies[0]
    assert c["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert third_part(c).get_content_type() == "text/rfc822-headers"
    _, per_rcpt = report(c)
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; perm@amx.test"
    # the administrator's own failed message: one bounce, no copy on top
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.ehlo("client.test")
        s.login("bob@example.test", "bob-pass")
        s.sendmail("bob@example.test", ["perm@amx.test"], body("own"))
    assert len(notices(d, "bob@example.test", n=2)) == 2
    time.sleep(1.0)
    assert len(notices(d, "bob@example.test", timeout=0)) == 2


def test_no_parameters_without_a_dsn_request(make_daemon, dns, sinks):
    """A DSN peer gets MAIL and RCPT without parameters when the sender asked for nothing (a
    stray byte there once made smtp-sink refuse every reused transaction)."""
    sink = sinks("127.0.0.12", modes=("dsn",))
    d = site(make_daemon, dns.addr, sink.port)
    for i in range(3):
        send_demo(d, ["plain%d@dsn.test" % i], body("noparams%d" % i))
    sink.wait_messages(3)
    assert all(re.fullmatch(r"(?i)RCPT TO:<plain\d@dsn\.test>", "RCPT " + c[4:].strip()) for c in sink.commands("RCPT")), \
        sink.commands("RCPT")
    assert all(re.fullmatch(r"(?i)MAIL FROM:<demo@example\.test> SIZE=\d+", c.strip())
               for c in sink.commands("MAIL")), sink.commands("MAIL")
