"""Held domains and the ETRN server (SPEC E3, RFC 1985; docs/etrn.md) end to end.

A raw-socket client speaks RFC 1985 to the ASan daemon: every reply code (250 251 252 253 458 459
500 501) and syntax form (domain, @domain, #queue), ETRN refused mid-transaction and before EHLO,
clients that may not release a domain, TURN always 502.  Held mail is accepted from anyone (a
held domain is ours to take), is never attempted until released (a short retry_interval and the
sinks see nothing), does not expire at queue_lifetime but at hold_lifetime, and a release sends it
once to the customer's host: the hold table's route=, the hosts table, or a DNS MX served by the
dnslib server (delivery_peers.py) — never back to this server.
"""
import os
import re
import time

import pytest

from delivery_peers import DnsServer, Sink
from tsubame_harness import free_port, token

ZONE = {
    "mxheld.test": [("MX", 10, "mx.mxheld.test")],
    "mx.mxheld.test": [("A", "127.0.0.4")],
    "selfmx.test": [("MX", 10, "tsubame.test")],          # its MX is our own hostname
    "flush.test": [("MX", 10, "mx.flush.test")],
    "mx.flush.test": [("A", "127.0.0.6")],
}


@pytest.fixture(scope="module")
def dns():
    d = DnsServer(ZONE)
    yield d
    d.stop()


class Site:
    """One daemon with a hold table and a sink per customer host."""

    def __init__(self, daemon, sinks):
        self.d = daemon
        self.sinks = sinks

    def __getattr__(self, name):
        return getattr(self.d, name)


@pytest.fixture(scope="module")
def site(base_dir, dns):
    from tsubame_harness import Daemon, finish
    mxport = free_port("127.0.0.4")
    sinks = {
        "dialup": Sink("127.0.0.2"),
        "corp": Sink("127.0.0.3"),
        "mx": Sink("127.0.0.4", mxport),
        "shared": Sink("127.0.0.5"),
        "flush": Sink("127.0.0.6", mxport),
        "acct": Sink("127.0.0.7"),
    }
    port = free_port()
    d = Daemon(base_dir, name="etrn", port=port, params={
        "dns_servers": dns.addr,
        "delivery_port": str(mxport),
        "retry_interval": "1",
        "smtp_timeout": "3",
        "smtp_connect_timeout": "2",
        "auth_plaintext": "yes",
        "max_errors": "50",
        "etrn_clients": "127.0.0.9",
    })
    d.write_table("relay", "127.0.0.1 true\n")
    d.write_table("hosts",
                  "corp.test 127.0.0.3:%d\n"
                  ".corp.test 127.0.0.3:%d\n"
                  "hostloop.test 127.0.0.1:%d\n" % (sinks["corp"].port, sinks["corp"].port, port))
    d.write_table("hold",
                  "# held domains for the ETRN tests\n"
                  "dialup.test    allow=127.0.0.1,127.0.0.8  route=127.0.0.2:%d  queue=dialup\n"
                  "@corp.test     allow=127.0.0.1\n"
                  "mxheld.test    allow=127.0.0.1\n"
                  "qa.test        allow=127.0.0.1  route=127.0.0.5:%d  queue=shared\n"
                  "qb.test        allow=127.0.0.1  route=127.0.0.5:%d  queue=Shared\n"
                  "acct.test      allow=demo@example.test  route=127.0.0.7:%d\n"
                  "loop.test      allow=127.0.0.1  route=127.0.0.1:%d\n"
                  "hostloop.test  allow=127.0.0.1\n"
                  "selfmx.test    allow=127.0.0.1\n"
                  "default.test   route=127.0.0.2:%d\n"
                  "once.test      allow=127.0.0.1  route=127.0.0.2:%d\n"
                  % (sinks["dialup"].port, sinks["shared"].port, sinks["shared"].port, sinks["acct"].port, port,
                     sinks["dialup"].port, sinks["dialup"].port))
    d.start()
    yield Site(d, sinks)
    for s in sinks.values():
        s.stop()
    finish(d)


@pytest.fixture
def etrn(site):
    site.d.mark()
    yield site
    assert site.d.running(), "tsubamed died during the test:\n%s" % site.d.tail()
    reports = site.d.sanitizer_reports(since_mark=True)
    assert not reports, "sanitizer report during the test:\n" + "\n".join(reports)


def send(d, rcpts, tok, source=None, sender="someone@outside.test"):
    """One message from a stranger (no AUTH): held domains are accepted from anyone."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    with d.session(source=source) as s:
        s.ehlo()
        s.expect("MAIL FROM:<%s>" % sender, "250 2.1.0")
        for r in rcpts:
            s.expect("RCPT TO:<%s>" % r, "250 2.1.5")
        s.expect("DATA", "354")
        s.send("From: %s\r\nSubject: %s\r\nMessage-ID: <%s@outside.test>\r\n\r\nheld mail %s\r\n.\r\n"
               % (sender, tok, tok, tok))
        r = s.reply()
        assert r.code == 250, r
        s.expect("QUIT", "221")
    m = re.search(r"queued as (\S+)", r.text)
    return m.group(1)


def etrn_cmd(d, arg, source="127.0.0.1", expect=None):
    with d.session(source=source) as s:
        s.ehlo()
        r = s.cmd("ETRN" + ("" if arg is None else " " + arg))
        if expect:
            assert r.startswith(expect), "ETRN %s -> %r, expected %r" % (arg, r, expect)
        s.expect("QUIT", "221")
    return r


def queued(d, tok=None):
    """The queue listing lines (one per message)."""
    out = d.ctl("queue", "list").out
    return [l for l in out.splitlines() if "(" in l and (tok is None or tok in l)]


def in_sink(sink, tok):
    return [m for m in sink.messages if tok.encode() in m["data"]]


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    assert pred(), "timed out waiting for %s" % what


# ---- the protocol ---------------------------------------------------------------------------


def test_ehlo_advertises_etrn(etrn):
    with etrn.session() as s:
        r = s.ehlo()
        assert "ETRN" in r.lines, r
        r = s.cmd("HELP")
        assert r.code == 214 and "ETRN" in r.first, r


def test_turn_is_always_502(etrn):
    with etrn.session() as s:
        s.expect("TURN", "502 5.7.0 Error: TURN is not supported")
        s.ehlo()
        s.expect("TURN", "502 5.7.0")
        s.expect("TURN dialup.test", "502 5.7.0")
        s.expect("NOOP", "250")
    # authenticated makes no difference
    with etrn.session(source="127.0.0.1") as s:
        s.ehlo()
        assert s.auth_plain("demo@example.test", "demo-pass").startswith("235")
        s.expect("TURN", "502 5.7.0")


def test_syntax_errors(etrn):
    with etrn.session() as s:
        s.expect("ETRN dialup.test", "503 5.5.1 Error: send HELO/EHLO first")
        s.ehlo()
        s.expect("ETRN", "500 5.5.2 Syntax Error")
        s.expect("ETRN ", "500 5.5.2 Syntax Error")
        for bad in ("localname", "dialup.test extra", " dialup.test", "dialup.test ", "@", "#", "@#dialup",
                    "#@dialup", "#bad!queue", "[127.0.0.1]", "192.0.2.1", "-x.test", "x..test", ".x.test",
                    "x.test..", "a@b.test", "d\u00e9.test", "x" * 64 + ".test", "#" + "q" * 65,
                    "dialup.test\tx"):
            s.expect("ETRN " + bad, "501 5.5.4 Syntax Error in Parameters")
        # the verb is case-insensitive; one trailing dot is the same domain
        s.expect("etrn nothing-here.test.", "458 4.3.0 Unable to queue messages for node nothing-here.test")
        s.expect("QUIT", "221")


def test_etrn_not_during_a_transaction(etrn):
    with etrn.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@outside.test>", "250")
        s.expect("ETRN dialup.test", "503 5.5.1 Error: MAIL transaction in progress")
        s.expect("RCPT TO:<x@dialup.test>", "250")
        s.expect("ETRN dialup.test", "503 5.5.1")
        s.expect("RSET", "250")
        r = s.cmd("ETRN dialup.test")
        assert r.code in (251, 252, 253), r


def test_unknown_node_and_queue_458(etrn):
    etrn_cmd(etrn, "unknown.test", expect="458 4.3.0 Unable to queue messages for node unknown.test")
    etrn_cmd(etrn, "@unknown.test", expect="458 4.3.0 Unable to queue messages for node @unknown.test")
    etrn_cmd(etrn, "#nosuchqueue", expect="458 4.3.0 Unable to queue messages for node #nosuchqueue")


def test_route_to_ourselves_is_refused_458(etrn):
    tok = token()
    qid = send(etrn, "x@loop.test", tok)
    etrn_cmd(etrn, "loop.test", expect="458 4.4.6 Unable to queue messages for node loop.test: "
             "its route points at this server")
    time.sleep(1.5)
    assert len(queued(etrn, qid)) == 1, queued(etrn)
    assert "event=held_route_loop" in etrn.log()
    etrn.ctl("queue", "delete", qid)


def test_client_not_allowed_459(etrn):
    tok = token()
    qid = send(etrn, "who@dialup.test", tok)
    r = etrn_cmd(etrn, "dialup.test", source="127.0.0.11")
    assert r.startswith("459 4.7.1 Node dialup.test not allowed: client 127.0.0.11 may not release it"), r
    etrn_cmd(etrn, "#dialup", source="127.0.0.11", expect="459 4.7.1 Node #dialup not allowed")
    etrn_cmd(etrn, "@dialup.test", source="127.0.0.11", expect="459 4.7.1")
    # an entry without allow= falls back to etrn_clients (127.0.0.9), not to anyone
    etrn_cmd(etrn, "default.test", source="127.0.0.1", expect="459 4.7.1 Node default.test not allowed")
    etrn_cmd(etrn, "default.test", source="127.0.0.9", expect="251 2.0.0 OK, no messages waiting for node default.test")
    time.sleep(1)
    assert not in_sink(etrn.sinks["dialup"], tok)
    # the second allowed address releases it
    etrn_cmd(etrn, "dialup.test", source="127.0.0.8", expect="253 2.0.0 OK, 1 pending messages for node dialup.test started")
    etrn.sinks["dialup"].wait(lambda: in_sink(etrn.sinks["dialup"], tok))
    assert in_sink(etrn.sinks["dialup"], tok)


def test_authenticated_account_may_release(etrn):
    tok = token()
    send(etrn, "box@acct.test", tok)
    with etrn.session(source="127.0.0.12") as s:
        s.ehlo()
        r = s.cmd("ETRN acct.test")
        assert r.startswith("459 4.7.1 Node acct.test not allowed"), r
        assert s.auth_plain("bob@example.test", "bob-pass").startswith("235")
        r = s.cmd("ETRN acct.test")
        assert r.startswith("459 4.7.1 Node acct.test not allowed: client 127.0.0.12 authenticated as "
                            "bob@example.test may not release it"), r
    with etrn.session(source="127.0.0.12") as s:
        s.ehlo()
        assert s.auth_plain("demo@example.test", "demo-pass").startswith("235")
        s.expect("ETRN acct.test", "253 2.0.0 OK, 1 pending messages for node acct.test started")
    sink = etrn.sinks["acct"]
    sink.wait(lambda: in_sink(sink, tok))
    assert in_sink(sink, tok)


def test_held_mail_waits_then_etrn_releases_it_once(etrn):
    sink = etrn.sinks["dialup"]
    before = sink.connections
    toks = [token(), token()]
    qids = [send(etrn, "user%d@dialup.test" % i, t, source="127.0.0.13") for i, t in enumerate(toks)]
    # retry_interval is 1 s: held mail is still never attempted
    time.sleep(3.5)
    assert sink.connections == before, sink.transcript[-10:]
    for q in qids:
        assert len(queued(etrn, q)) == 1, queued(etrn)
        assert q not in etrn.log("delivery"), etrn.log("delivery")[-2000:]
    etrn_cmd(etrn, "dialup.test", expect="253 2.0.0 OK, 2 pending messages for node dialup.test started")
    for t in toks:
        sink.wait(lambda: in_sink(sink, t))
        assert len(in_sink(sink, t)) == 1, sink.transcript[-20:]
    wait_for(lambda: not any(queued(etrn, q) for q in qids), what="queue empty")
    etrn_cmd(etrn, "dialup.test", expect="251 2.0.0 OK, no messages waiting for node dialup.test")
    # by queue name too, same node
    etrn_cmd(etrn, "#dialup", expect="251 2.0.0 OK, no messages waiting for node #dialup")


def test_only_the_held_recipients_of_a_message_wait(etrn):
    sink = etrn.sinks["dialup"]
    tok = token()
    qid = send(etrn, ["mixed@dialup.test", "demo@example.test"], tok)
    etrn.wait_for_token("demo@example.test", tok)
    time.sleep(1.5)
    lines = queued(etrn, qid)
    assert len(lines) == 1 and "mixed@dialup.test(R)" in lines[0], lines
    assert not in_sink(sink, tok)
    etrn_cmd(etrn, "dialup.test", expect="253 2.0.0 OK, 1 pending messages for node dialup.test started")
    sink.wait(lambda: in_sink(sink, tok))
    assert in_sink(sink, tok)[0]["rcpts"] == ["TO:<mixed@dialup.test>"]
    wait_for(lambda: not queued(etrn, qid), what="the message to leave the queue")


def test_a_release_goes_out_once_then_the_mail_waits_again(etrn):
    """The customer's host refuses (450): the recipient stays queued, held, until the next ETRN."""
    sink = etrn.sinks["dialup"]
    tok = token()
    qid = send(etrn, "temp-%s@once.test" % tok, tok)
    n0 = len(sink.commands("RCPT"))
    etrn_cmd(etrn, "once.test", expect="253 2.0.0 OK, 1 pending messages")
    wait_for(lambda: len(sink.commands("RCPT")) > n0, what="the released attempt")
    time.sleep(3.5)   # retry_interval 1: no second attempt without a new ETRN
    assert len(sink.commands("RCPT")) == n0 + 1, sink.transcript[-20:]
    assert len(queued(etrn, qid)) == 1
    assert re.search(r"qid=%s event=deferred .*dsn=4\.\d\.\d" % re.escape(qid), etrn.log("delivery"))
    etrn_cmd(etrn, "once.test", expect="253 2.0.0 OK, 1 pending messages")
    wait_for(lambda: len(sink.commands("RCPT")) > n0 + 1, what="the second released attempt")
    assert len(queued(etrn, qid)) == 1


def test_pending_252_while_a_release_is_on_its_way(etrn):
    sink = etrn.sinks["dialup"]
    tok = token()
    send(etrn, "slow@dialup.test", tok)
    n0 = len(sink.commands("DATA"))
    sink.data_delay = 3.0
    try:
        with etrn.session() as s:
            s.ehlo()
            s.expect("ETRN dialup.test", "253 2.0.0 OK, 1 pending messages for node dialup.test started")
            wait_for(lambda: len(sink.commands("DATA")) > n0, what="delivery in progress")
            s.expect("ETRN dialup.test", "252 2.0.0 OK, pending messages for node dialup.test started")
            s.expect("ETRN #dialup", "252 2.0.0 OK, pending messages for node #dialup started")
    finally:
        sink.data_delay = 0.0
    sink.wait(lambda: in_sink(sink, tok))
    assert len(in_sink(sink, tok)) == 1


def test_subdomains_with_at_and_the_hosts_table(etrn):
    sink = etrn.sinks["corp"]
    t1, t2 = token(), token()
    send(etrn, "a@corp.test", t1)
    send(etrn, "b@deep.sub.corp.test", t2)
    time.sleep(1.5)
    assert not in_sink(sink, t1) and not in_sink(sink, t2)
    # the domain alone: only corp.test
    etrn_cmd(etrn, "corp.test", expect="253 2.0.0 OK, 1 pending messages for node corp.test started")
    sink.wait(lambda: in_sink(sink, t1))
    time.sleep(1)
    assert not in_sink(sink, t2)
    # a subdomain by name
    etrn_cmd(etrn, "sub.corp.test", expect="251 2.0.0")
    # @: the domain and everything below it
    etrn_cmd(etrn, "@sub.corp.test", expect="253 2.0.0 OK, 1 pending messages for node @sub.corp.test started")
    sink.wait(lambda: in_sink(sink, t2))
    m = in_sink(sink, t2)[0]
    assert m["rcpts"] == ["TO:<b@deep.sub.corp.test>"], m["rcpts"]


def test_queue_name_releases_every_entry_with_it(etrn):
    sink = etrn.sinks["shared"]
    t1, t2 = token(), token()
    send(etrn, ["x@qa.test", "y@qb.test"], t1)
    send(etrn, "z@qb.test", t2)
    etrn_cmd(etrn, "#SHARED", expect="253 2.0.0 OK, 2 pending messages for node #shared started")
    # one transaction per destination domain: t1 may arrive as two messages
    sink.wait(lambda: sum(len(m["rcpts"]) for m in in_sink(sink, t1)) >= 2 and len(in_sink(sink, t2)) >= 1)
    rcpts = sorted(r for m in in_sink(sink, t1) for r in m["rcpts"])
    assert rcpts == ["TO:<x@qa.test>", "TO:<y@qb.test>"], rcpts


def test_release_through_dns_mx(etrn):
    sink = etrn.sinks["mx"]
    tok = token()
    send(etrn, "c@mxheld.test", tok)
    time.sleep(1.5)
    assert not in_sink(sink, tok)
    etrn_cmd(etrn, "mxheld.test", expect="253 2.0.0 OK, 1 pending messages for node mxheld.test started")
    sink.wait(lambda: in_sink(sink, tok))
    assert in_sink(sink, tok)


def test_route_that_resolves_to_ourselves_is_deferred_not_looped(etrn):
    """hostloop.test: the hosts table sends it to our own listener; selfmx.test: its MX is our hostname."""
    for dom in ("hostloop.test", "selfmx.test"):
        tok = token()
        rcpt = "%s@%s" % (tok, dom)
        qid = send(etrn, rcpt, tok)
        etrn_cmd(etrn, dom, expect="253 2.0.0 OK, 1 pending messages for node %s started" % dom)
        want = r"qid=%s event=deferred .*dsn=4\.4\.6" % re.escape(qid)
        wait_for(lambda: re.search(want, etrn.log("delivery")), what="a 4.4.6 deferral for " + dom)
        time.sleep(1)
        # no second copy came back in through our own listener, and the message still waits
        assert len(queued(etrn, tok)) == 1, queued(etrn)
        assert len(queued(etrn, qid)) == 1, queued(etrn)
        assert "event=held_route_loop" in etrn.log() or dom == "selfmx.test"
        etrn.ctl("queue", "delete", qid)


def test_domain_not_held_is_flushed_for_etrn_clients_250(etrn):
    """flush.test is an ordinary remote domain whose MX answers 450 to "temp" recipients."""
    sink = etrn.sinks["flush"]
    tok = token()
    with etrn.session(source="127.0.0.1") as s:   # relay rule: 127.0.0.1 may relay
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        s.expect("RCPT TO:<temp-%s@flush.test>" % tok, "250")
        s.expect("DATA", "354")
        s.send("Subject: %s\r\n\r\nx\r\n.\r\n" % tok)
        qid = re.search(r"queued as (\S+)", s.reply().text).group(1)
    wait_for(lambda: any(tok in c for c in sink.commands("RCPT")), what="a first attempt")
    etrn_cmd(etrn, "flush.test", source="127.0.0.1", expect="458 4.3.0 Unable to queue messages for node flush.test")
    etrn_cmd(etrn, "flush.test", source="127.0.0.9", expect="250 2.0.0 OK, queuing for node flush.test started")
    etrn_cmd(etrn, "@flush.test", source="127.0.0.9", expect="250 2.0.0 OK, queuing for node @flush.test started")
    etrn_cmd(etrn, "nothing.test", source="127.0.0.9", expect="251 2.0.0 OK, no messages waiting for node nothing.test")
    assert re.search(r"event=flush by=etrn node=flush\.test messages=1", etrn.log()), etrn.log()[-2000:]
    etrn.ctl("queue", "delete", qid, check=False)


def test_held_domain_accepted_from_anyone_relay_still_closed(etrn):
    with etrn.session(source="127.0.0.14") as s:
        s.ehlo()
        s.expect("MAIL FROM:<stranger@outside.test>", "250")
        s.expect("RCPT TO:<friend@elsewhere.test>", "550 5.7.1 <friend@elsewhere.test>: Relaying denied")
        s.expect("RCPT TO:<friend@Dialup.TEST>", "250 2.1.5")
        s.expect("RCPT TO:<friend@any.corp.test>", "250 2.1.5")
        s.expect("RCPT TO:<friend@default.test>", "250 2.1.5")
        s.expect("RSET", "250")


def test_pipelined_etrn_and_the_session_limit(etrn):
    with etrn.session(source="127.0.0.1") as s:
        s.ehlo()
        s.send("ETRN unknown.test\r\nNOOP\r\nETRN dialup.test\r\nNOOP\r\n")
        r = s.replies(4)
        assert [x.code for x in r] == [458, 250, 251, 250], r
        for _ in range(14):
            s.cmd("ETRN dialup.test")
        r = s.cmd("ETRN dialup.test")
        assert r.startswith("458 4.3.0 Unable to queue messages for node dialup.test: too many ETRN commands"), r
        s.expect("NOOP", "250")


def test_tsubamectl_flush_domain_releases_held_mail_but_bare_flush_does_not(etrn):
    sink = etrn.sinks["dialup"]
    tok = token()
    qid = send(etrn, "admin@dialup.test", tok)
    out = etrn.ctl("queue", "flush").out
    time.sleep(1.5)
    assert not in_sink(sink, tok), out
    assert len(queued(etrn, qid)) == 1
    out = etrn.ctl("queue", "flush", "dialup.test").out
    assert out.startswith("flush dialup.test: 1 message, 1 recipient"), out
    sink.wait(lambda: in_sink(sink, tok))
    assert in_sink(sink, tok)


# ---- lifetimes ---------------------------------------------------------------------------


def age_queue_file(d, qid, seconds):
    """Move a queued message's arrival back (same number of digits: the file stays valid)."""
    path = [p for p in d.queue_files("active") if os.path.basename(p) == qid][0]
    with open(path, "rb") as f:
        data = f.read()
    m = re.search(rb"\narrival: (\d+)\n", data)
    old = int(m.group(1))
    new = str(old - seconds).encode()
    assert len(new) == len(m.group(1))
    data = data[:m.start(1)] + new + data[m.end(1):]
    with open(path, "r+b") as f:
        f.write(data)


def test_not_expired_by_queue_lifetime_but_by_hold_lifetime(make_daemon):
    sinkport = free_port("127.0.0.2")
    sink = Sink("127.0.0.2", sinkport)
    try:
        d = make_daemon(params={"retry_interval": "1", "auth_plaintext": "yes", "queue_lifetime": "1d",
                                "hold_lifetime": "7d", "delay_warning_time": "1h"}, start=False)
        d.write_table("hold", "dialup.test allow=127.0.0.1 route=127.0.0.2:%d\n" % sinkport)
        d.start()
        t_keep, t_old = token(), token()
        with d.smtp() as c:
            c.ehlo()
            assert c.login("demo@example.test", "demo-pass")[0] == 235
            assert not c.sendmail("demo@example.test", ["keep@dialup.test"], "Subject: %s\r\n\r\nx\r\n" % t_keep)
            assert not c.sendmail("demo@example.test", ["old@dialup.test"], "Subject: %s\r\n\r\nx\r\n" % t_old)
        qids = {}
        for line in queued(d):
            qid = line.split()[0]
            qids["keep" if "keep@" in line else "old"] = qid
        assert len(qids) == 2, queued(d)
        d.stop()
        age_queue_file(d, qids["keep"], 3 * 86400)    # past queue_lifetime (1d), within hold_lifetime (7d)
        age_queue_file(d, qids["old"], 8 * 86400)     # past hold_lifetime
        d.start()
        # the old one bounces (5.4.7) with the reason; the other waits, with no delay warning either
        bounces = d.wait_for_token("demo@example.test", qids["old"], timeout=15)
        text = bounces[0].decode("utf-8", "replace")
        assert "not released by ETRN within 7 days" in text, text[:3000]
        assert "Subject: Undelivered Mail Returned to Sender (expired)" in text, text[:3000]
        assert "Action: failed" in text and "Status: 5.4.7" in text, text[:3000]
        time.sleep(2)
        assert len(queued(d, qids["keep"])) == 1, queued(d)
        assert not d.find("demo@example.test", qids["keep"]), "a delay warning or bounce for held mail"
        assert sink.connections == 0
        with d.session(source="127.0.0.1") as s:
            s.ehlo()
            s.expect("ETRN dialup.test", "253 2.0.0 OK, 1 pending messages for node dialup.test started")
        sink.wait(lambda: in_sink(sink, t_keep))
        assert in_sink(sink, t_keep) and not in_sink(sink, t_old)
    finally:
        sink.stop()


def test_hold_table_errors_in_check_and_reload(make_daemon):
    d = make_daemon(start=False)
    d.write_table("hold",
                  "ok.test allow=127.0.0.1\n"
                  "bad..test\n"
                  "x.test allow=not-an-ip\n"
                  "y.test route=[::1\n"
                  "z.test queue=a/b\n"
                  "ok.test\n"
                  "w.test colour=blue\n")
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 1, cp.out + cp.err
    for line in (2, 3, 4, 5, 6, 7):
        assert "hold:%d: " % line in cp.err, cp.err
    d.write_table("hold", "ok.test allow=127.0.0.1\n")
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 0, cp.err
    # a bad table on SIGHUP keeps the good one
    d.start()
    d.write_table("hold", "ok.test allow=\n")
    import signal
    d.signal(signal.SIGHUP)
    time.sleep(1)
    assert "reload_refused" in d.log() or "reload_failed" in d.log(), d.log()[-2000:]
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@outside.test>", "250")
        s.expect("RCPT TO:<b@ok.test>", "250 2.1.5")
