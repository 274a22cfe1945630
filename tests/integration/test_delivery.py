"""The delivery engine (issue 4) end to end with real peers on loopback: a dnslib DNS server and
SMTP sinks on 127.0.0.x (delivery_peers.py), the ASan daemon relaying to them."""
import email
import email.policy
import os
import re
import time

import pytest

from delivery_peers import DnsServer, Sink
from tsubame_harness import free_port, make_cert, wait_log as harness_wait_log

ZONE = {
    "amx.test": [("A", "127.0.0.5")],                       # no MX: A fallback
    "pref.test": [("MX", 10, "a.pref.test"), ("MX", 20, "b.pref.test")],
    "a.pref.test": [("A", "127.0.0.6")],                    # nothing listens there
    "b.pref.test": [("A", "127.0.0.7")],
    "mix.test": [("MX", 10, "mx.mix.test")],
    "mx.mix.test": [("A", "127.0.0.8")],
    "dts.test": [("MX", 10, "mx.dts.test")],
    "mx.dts.test": [("A", "127.0.0.11")],                   # nothing listens there
    "null.test": [("MX", 0, ".")],
    "v6.test": [("AAAA", "::1")],                           # no MX, no A: AAAA fallback
    "mx6.test": [("MX", 10, "host6.mx6.test")],
    "host6.mx6.test": [("AAAA", "::1")],
}
SERVFAIL = ("fail.test",)
DEAD_DNS = "127.0.0.1:9"


@pytest.fixture(scope="module")
def dns():
    d = DnsServer(ZONE, SERVFAIL)
    yield d
    d.stop()



@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("peer-cert")), cn="sink.test")


def fast(dns_addr, port, **extra):
    p = {
        "dns_servers": dns_addr,
        "delivery_port": str(port),
        "retry_interval": "1",
        "smtp_timeout": "2",
        "smtp_connect_timeout": "2",
        "auth_plaintext": "yes",       # the local sender authenticates without TLS (loopback)
    }
    p.update({k: str(v) for k, v in extra.items()})
    return p


def site(make_daemon, params, tables=None):
    d = make_daemon(params=params, start=False)
    d.write_table("relay", "127.0.0.1 true\n")
    for name, text in (tables or {}).items():
        d.write_table(name, text)
    d.start()
    return d


def wait_log(d, pattern, name="delivery", timeout=15.0, n=1):
    return harness_wait_log(d, pattern, name, timeout, n)


def send_as_demo(d, rcpts, data):
    """One message from demo@example.test, authenticated (local senders must AUTH)."""
    with d.smtp() as s:
        s.ehlo()
        s.user, s.password = "demo@example.test", "demo-pass"
        code, resp = s.auth("PLAIN", s.auth_plain)
        assert code == 235, (code, resp)
        refused = s.sendmail("demo@example.test", rcpts, data)
        assert not refused, refused


def queue_list(d):
    return d.ctl("queue", "list").out


def wait_queue_empty(d, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = queue_list(d)
        if not out.strip() or out.strip() == "0 messages":
            return
        time.sleep(0.1)
    raise AssertionError("queue not empty after %.0fs:\n%s\n%s" % (timeout, queue_list(d), d.log("delivery")))


def body(tok, subject="delivery test"):
    return ("From: sender@client.test\r\nTo: rcpt@remote\r\nSubject: %s %s\r\n"
            "Message-ID: <%s@client.test>\r\n\r\nline one %s\r\n.leading dot\r\n\r\nlast line\r\n"
            % (subject, tok, tok, tok)).encode()


def strip_received(data):
    """The message as sent by the client: our Received: header (and its folded lines) removed."""
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"Received: "), "first line is not our Received: %r" % lines[0][:200]
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def bounces_for(d, user, tok, n=1, timeout=15.0):
    msgs = d.wait_for_token(user, tok, n=n, timeout=timeout)
    return [email.message_from_bytes(m, policy=email.policy.compat32) for m in msgs]


def dsn_fields(msg):
    """[(per-message fields, [per-recipient field dicts])] of a multipart/report bounce."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.walk()]
    blocks = parts[0].get_payload()
    # compat32 parses message/delivery-status into a list of header blocks
    recips = [{k.lower(): v for k, v in b.items()} for b in blocks[1:]]
    return {k.lower(): v for k, v in blocks[0].items()}, recips


# --------------------------------------------------------------------------


def test_a_fallback_byte_exact(make_daemon, dns, sinks, token=None):
    sink = sinks("127.0.0.5")
    d = site(make_daemon, fast(dns.addr, sink.port))
    tok = "tokafb%d" % os.getpid()
    b = body(tok)
    d.send("user@amx.test", b)
    m = sink.wait_messages(1)[0]
    assert m["mail_from"].startswith("FROM:<sender@client.test>"), m["mail_from"]
    assert [r.split(">")[0] for r in m["rcpts"]] == ["TO:<user@amx.test"]
    assert strip_received(m["data"]) == b, m["data"][:600]
    assert b"by " + b"tsubame.test" in m["data"].split(b"\r\n\r\n")[0]
    wait_log(d, r"event=delivered to=<user@amx\.test> relay=[^ ]*127\.0\.0\.5\]?:%d" % sink.port)
    wait_queue_empty(d)
    time.sleep(0.5)
    assert len(sink.messages) == 1


def test_mx_preference_fallback(make_daemon, dns, sinks):
    sink = sinks("127.0.0.7")
    d = site(make_daemon, fast(dns.addr, sink.port))
    d.send("user@pref.test", body("pref"))
    sink.wait_messages(1)
    wait_log(d, r"event=delivered to=<user@pref\.test> relay=[^ ]*127\.0\.0\.7")
    wait_queue_empty(d)


def test_per_recipient_mix_and_refused_retries(make_daemon, dns, sinks):
    sink = sinks("127.0.0.8")
    d = site(make_daemon, fast(dns.addr, sink.port, retry_refused_count=2))
    tok = "tokmix%d" % os.getpid()
    send_as_demo(d, ["ok@mix.test", "temp@mix.test", "perm@mix.test"], body(tok))
    sink.wait_messages(1)
    assert [r.split(">")[0] for r in sink.messages[0]["rcpts"]] == ["TO:<ok@mix.test"]
    # perm: bounced at once
    wait_log(d, r"event=failed to=<perm@mix\.test> .*dsn=5\.1\.1", timeout=10)
    wait_log(d, r"event=bounced to=<perm@mix\.test>", timeout=10)
    # temp: 1 attempt + 2 retries, then bounced
    wait_log(d, r"event=bounced to=<temp@mix\.test>", timeout=30)
    temp_rcpts = [c for c in sink.commands("RCPT") if "temp@" in c]
    assert len(temp_rcpts) == 3, sink.transcript
    msgs = bounces_for(d, "demo@example.test", tok, n=2, timeout=10)
    seen = {}
    for msg in msgs:
        assert msg.get("From") and "<>" not in msg["From"]
        top, recips = dsn_fields(msg)
        for r in recips:
            assert r["action"].strip() == "failed", r
            seen[r["final-recipient"].split(";")[-1].strip().lower()] = r["status"].strip()
    assert set(seen) == {"perm@mix.test", "temp@mix.test"}, seen
    assert seen["perm@mix.test"].startswith("5.")
    assert re.match(r"[45]\.\d", seen["temp@mix.test"])
    for f in d.message_files("demo@example.test"):
        with open(f, "rb") as fh:
            assert fh.readline().strip() == b"Return-Path: <>"
    time.sleep(1.5)
    assert len(sink.messages) == 1, "ok@ delivered more than once"
    wait_queue_empty(d)


def test_no_bounce_for_null_sender(make_daemon, dns, sinks):
    """A failed message from <> is never bounced to <>: the administrator hears of it once, and a
    notice to the administrator that fails in turn is dropped (no loop)."""
    sink = sinks("127.0.0.5")
    d = site(make_daemon, fast(dns.addr, sink.port, postmaster_address="demo@example.test"))
    d.send("perm@amx.test", body("nullsender"), sender="")
    wait_log(d, r"event=notice kind=failure_undeliverable to=<demo@example\.test>", name="main")
    wait_queue_empty(d)
    assert not sink.messages
    files = d.message_files("demo@example.test")
    assert len(files) == 1
    with open(files[0], "rb") as fh:
        msg = email.message_from_binary_file(fh, policy=email.policy.default)
    assert msg["Return-Path"] == "<>"
    assert "administrator" in msg["Subject"]
    # the administrator's address itself undeliverable: the notice is dropped, not bounced again
    d2 = site(make_daemon, fast(dns.addr, sink.port, postmaster_address="admin@nx.test"))
    d2.send("perm@amx.test", body("nullsender2"), sender="")
    wait_log(d2, r"event=notice_dropped reason=admin_notice_failed to=<admin@nx\.test>", name="main")
    wait_queue_empty(d2)
    assert len(re.findall(r"event=notice ", d2.log())) == 1


def test_null_mx_nxdomain_servfail(make_daemon, dns, sinks):
    d = site(make_daemon, fast(dns.addr, 2525), tables={})
    tok = "toknull%d" % os.getpid()
    send_as_demo(d, ["a@null.test", "b@nx.test", "c@fail.test"], body(tok))
    wait_log(d, r"event=bounced to=<a@null\.test> dsn=5\.1\.10")
    wait_log(d, r"event=bounced to=<b@nx\.test> dsn=5\.1\.2")
    wait_log(d, r"event=deferred to=<c@fail\.test>")
    time.sleep(2.5)
    out = queue_list(d)
    assert "c@fail.test" in out and re.search(r"c@fail\.test>?\(R", out), out
    assert "bounced to=<c@fail.test>" not in d.log("delivery")
    bounces_for(d, "demo@example.test", tok, n=1)


def test_smarthost_auth(make_daemon, dns, sinks, cert):
    sink = sinks("127.0.0.10", modes=("auth", "starttls"), cert=cert[0], key=cert[1])
    d = site(make_daemon, fast(dns.addr, 2525, delivery_mode="smarthost",
                               smarthost="127.0.0.10:%d" % sink.port,
                               smarthost_auth_user="tester", smarthost_auth_password="s3cret"))
    d.send("anyone@nx.test", body("smarthost"))
    m = sink.wait_messages(1)[0]
    assert m["tls"], sink.transcript
    assert any(c.upper().startswith("AUTH") for c in sink.commands("AUTH"))
    wait_log(d, r"event=delivered to=<anyone@nx\.test> relay=[^ ]*127\.0\.0\.10")
    wait_queue_empty(d)


def test_smarthost_wrong_password_defers(make_daemon, dns, sinks, cert):
    sink = sinks("127.0.0.10", modes=("auth", "starttls"), cert=cert[0], key=cert[1])
    d = site(make_daemon, fast(dns.addr, 2525, delivery_mode="smarthost",
                               smarthost="127.0.0.10:%d" % sink.port,
                               smarthost_auth_user="tester", smarthost_auth_password="wrong"))
    send_as_demo(d, "anyone@nx.test", body("badpw"))
    wait_log(d, r"event=deferred to=<anyone@nx\.test>", timeout=6)
    assert sink.wait(lambda: any("535" in l for l in sink.transcript), 5), sink.transcript
    time.sleep(1.5)
    assert not sink.messages
    assert "event=bounced" not in d.log("delivery")
    assert re.search(r"anyone@nx\.test>?\(R", queue_list(d)), queue_list(d)
    assert not d.message_files("demo@example.test")


def test_gateway_table(make_daemon, dns, sinks, cert):
    mx = sinks("127.0.0.5")
    gw = sinks("127.0.0.12")
    tls = sinks("127.0.0.13", modes=("implicittls",), cert=cert[0], key=cert[1])
    table = ("' gateway table\n"
             "amx.test,127.0.0.12,%d\n"
             " amx.test,127.0.0.5,1\n"              # a comment (leading blank)
             "*.wild.test,127.0.0.12,%d\n"
             "tls.test,127.0.0.13,%d*\n" % (gw.port, gw.port, tls.port))
    d = site(make_daemon, fast(dns.addr, mx.port), tables={"gateways": table})
    d.send("u1@amx.test", body("gw1"))
    d.send("u2@a.b.wild.test", body("gw2"))
    d.send("u3@tls.test", body("gw3"))
    gw.wait_messages(2)
    tls.wait_messages(1)
    got = sorted(r.split(">")[0] for m in gw.messages for r in m["rcpts"])
    assert got == ["TO:<u1@amx.test", "TO:<u2@a.b.wild.test"], got
    assert [r.split(">")[0] for r in tls.messages[0]["rcpts"]] == ["TO:<u3@tls.test"]
    wait_queue_empty(d)
    assert not mx.messages


def test_direct_then_smarthost(make_daemon, dns, sinks):
    sh = sinks("127.0.0.10")
    d = site(make_daemon, fast(dns.addr, sh.port, delivery_mode="direct_then_smarthost",
                               smarthost="127.0.0.10:%d" % sh.port))
    d.send("user@dts.test", body("dts"))
    sh.wait_messages(1)
    wait_log(d, r"event=delivered to=<user@dts\.test> relay=[^ ]*127\.0\.0\.10")
    wait_queue_empty(d)


def test_hosts_table_without_dns(make_daemon, sinks):
    sink = sinks("127.0.0.14")
    d = site(make_daemon, fast(DEAD_DNS, 2525),
             tables={"hosts": "amx.test 127.0.0.14:%d\n" % sink.port})
    d.send("user@amx.test", body("hosts"))
    sink.wait_messages(1)
    wait_log(d, r"event=delivered to=<user@amx\.test> relay=[^ ]*127\.0\.0\.14")
    wait_queue_empty(d)


def test_crash_during_remote_delivery(make_daemon, dns, sinks):
    sink = sinks("127.0.0.5", modes=("hangehlo",))
    d = site(make_daemon, fast(dns.addr, sink.port, smtp_timeout=30))
    tok = "tokcrash%d" % os.getpid()
    d.send("user@amx.test", body(tok))
    assert sink.wait(lambda: sink.commands("EHLO") or sink.commands("HELO"), 15), sink.transcript
    d.kill9()
    sink.modes.discard("hangehlo")
    d.start()
    sink.wait_messages(1, timeout=30)
    assert tok.encode() in sink.messages[0]["data"]
    wait_queue_empty(d, timeout=15)


def test_noanswer_period_then_bounce(make_daemon, dns, sinks):
    """Connection refused at the only MX: deferred, bounced once retry_noanswer_period has passed."""
    d = site(make_daemon, fast(dns.addr, free_port("127.0.0.11"), retry_noanswer_period=3))
    tok = "toknoans%d" % os.getpid()
    t0 = time.monotonic()
    send_as_demo(d, "user@dts.test", body(tok))
    wait_log(d, r"event=deferred to=<user@dts\.test>")
    wait_log(d, r"event=bounced to=<user@dts\.test>", timeout=20)
    # arrival times are whole seconds: the 3 s period may end up to 1 s early on the test's clock
    assert time.monotonic() - t0 >= 1.9
    msg = bounces_for(d, "demo@example.test", tok)[0]
    _, recips = dsn_fields(msg)
    assert recips[0]["action"].strip() == "failed"
    wait_queue_empty(d)


def test_line_period_then_bounce(make_daemon, dns, sinks):
    """The peer never answers EHLO (time-out): deferred, bounced after retry_line_period."""
    sink = sinks("127.0.0.5", modes=("hangehlo",))
    d = site(make_daemon, fast(dns.addr, sink.port, smtp_timeout=1, retry_line_period=3))
    tok = "tokline%d" % os.getpid()
    send_as_demo(d, "user@amx.test", body(tok))
    wait_log(d, r"event=deferred to=<user@amx\.test>")
    wait_log(d, r"event=bounced to=<user@amx\.test>", timeout=25)
    assert sink.connections >= 2
    bounces_for(d, "demo@example.test", tok)
    wait_queue_empty(d)


def test_abort_on_rcpt_5xx(make_daemon, dns, sinks):
    sink = sinks("127.0.0.8")
    d = site(make_daemon, fast(dns.addr, sink.port, abort_on_rcpt_5xx="yes"))
    tok = "tokabort%d" % os.getpid()
    send_as_demo(d, ["ok@mix.test", "perm@mix.test"], body(tok))
    wait_log(d, r"event=bounced to=<perm@mix\.test>")
    sink.wait_messages(1, timeout=15)
    # the first transaction sent no DATA: ok@ went in a later one
    assert sink.connections >= 2, sink.transcript
    assert len(sink.messages) == 1
    wait_queue_empty(d)


def test_mandatory_tls_without_starttls_defers(make_daemon, dns, sinks):
    sink = sinks("127.0.0.5")
    d = site(make_daemon, fast(dns.addr, sink.port, smtp_tls="mandatory"))
    d.send("user@amx.test", body("mandtls"))
    wait_log(d, r"event=deferred to=<user@amx\.test>")
    time.sleep(1)
    assert not sink.messages and not sink.commands("MAIL"), sink.transcript
    assert "event=bounced" not in d.log("delivery")


def test_smarthost_auth_per_account(make_daemon, dns, sinks, cert):
    """seed 002 "アカウントごとの認証": the submitting account's own smart-host login; others use the
    global one (wrong here, so their mail waits)."""
    sink = sinks("127.0.0.10", modes=("auth", "starttls"), cert=cert[0], key=cert[1])
    d = site(make_daemon, fast(dns.addr, 2525, delivery_mode="smarthost",
                               smarthost="127.0.0.10:%d" % sink.port,
                               smarthost_auth_user="global", smarthost_auth_password="wrong",
                               smarthost_auth_per_account="yes"),
             tables={"smarthost_auth": "# account user password\ndemo@example.test tester s3cret\n"})
    send_as_demo(d, "anyone@nx.test", body("peraccount"))
    m = sink.wait_messages(1)[0]
    assert m["tls"]
    d.send("other@nx.test", body("stranger"))
    wait_log(d, r"event=deferred to=<other@nx\.test>.*AUTH refused: 535", timeout=10)
    assert len(sink.messages) == 1


def test_check_reports_routing_tables(make_daemon):
    d = make_daemon(params={"smarthost_auth_per_account": "yes"}, start=False)
    d.write_table("smarthost_auth", "demo@example.test onlyuser\n")
    d.write_table("gateways", "amx.test,127.0.0.12,99999\n")
    r = d.run_tsubamed("-n", "-c", d.conf)
    assert r.returncode != 0
    assert re.search(r"smarthost_auth:1: no password", r.err), r.err
    assert re.search(r"gateways:1:", r.err), r.err


def test_forward_all_sends_local_domains_to_the_gateway(make_daemon, dns, sinks):
    """seed 003 "全受信メールをSMTPゲートウェイへ転送": mail for our own domains is not stored here."""
    gw = sinks("127.0.0.12")
    d = site(make_daemon, fast(dns.addr, 25, forward_all="yes", forward_gateway="127.0.0.12:%d" % gw.port))
    d.send(["bob@example.test", "info@example.test"], body("fwdall"))
    m = gw.wait_messages(1)[0]
    got = sorted(r.split(">")[0] for r in m["rcpts"])
    # the alias keeps its address towards the gateway (the manual's rewrite flag is off for info@)
    assert got == ["TO:<bob@example.test", "TO:<info@example.test"], got
    wait_queue_empty(d)
    assert not d.message_files("bob@example.test")
    assert not d.message_files("demo@example.test")
    # users we do not know are still refused at RCPT
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<x@client.test>", "250")
        s.expect("RCPT TO:<nobody@example.test>", "550 5.1.1")


def test_opportunistic_tls_failure_retries_in_plaintext(make_daemon, dns, sinks):
    """A peer whose STARTTLS handshake fails gets the message over a new plaintext session at once
    (opportunistic TLS, as Postfix does), not a deferral."""
    sink = sinks("127.0.0.5", modes=("brokentls",))
    d = site(make_daemon, fast(dns.addr, sink.port))
    d.send("u@amx.test", body("brokentls"))
    m = sink.wait_messages(1, timeout=10)[0]
    assert not m["tls"]
    assert sink.connections == 2
    wait_log(d, r"event=tls_failed .*action=plaintext_retry", name="main")
    wait_queue_empty(d)
    # mandatory TLS never falls back
    sink2 = sinks("127.0.0.5", modes=("brokentls",))
    d2 = site(make_daemon, fast(dns.addr, sink2.port, smtp_tls="mandatory"))
    d2.send("u@amx.test", body("mandatory"))
    wait_log(d2, r"event=deferred to=<u@amx\.test>", timeout=10)
    assert not sink2.messages


def test_aaaa_fallback_and_ipv6_mx(make_daemon, dns, sinks):
    """D3: a domain with only an AAAA record, and an MX host with only an AAAA record."""
    sink = sinks("::1")
    d = site(make_daemon, fast(dns.addr, sink.port))
    d.send("u@v6.test", body("aaaa"))
    d.send("u@mx6.test", body("mx6"))
    sink.wait_messages(2)
    wait_log(d, r"event=delivered to=<u@v6\.test> relay=[^ ]*\[::1\]", n=1)
    wait_log(d, r"event=delivered to=<u@mx6\.test> relay=[^ ]*\[::1\]", n=1)
    wait_queue_empty(d)


def test_bounce_when_no_mx(make_daemon, dns, sinks):
    """The manual's option: no MX record means a bounce at once, not the A fallback."""
    sink = sinks("127.0.0.5")
    d = site(make_daemon, fast(dns.addr, sink.port, bounce_when_no_mx="yes"))
    d.send("u@amx.test", body("nomx"))
    wait_log(d, r"event=bounced to=<u@amx\.test>")
    wait_queue_empty(d)
    assert not sink.messages
    # a domain with an MX is unaffected
    sink2 = sinks("127.0.0.8")
    d2 = site(make_daemon, fast(dns.addr, sink2.port, bounce_when_no_mx="yes"))
    d2.send("ok@mix.test", body("withmx"))
    sink2.wait_messages(1)
