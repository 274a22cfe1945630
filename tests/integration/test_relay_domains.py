"""E1 relay domains end to end: Tsubame as the gateway in front of an inner server (an aiosmtpd
server on 127.0.0.31 standing in for Exchange), with recipient verification so that the gateway
refuses at RCPT time what the inner server would refuse, and never blocks other sessions while
it asks."""
import asyncio
import re
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from delivery_peers import Sink
from tsubame_harness import free_port

INNER = "127.0.0.31"
HOSTED = "127.0.0.32"
USERS = {"known@corp.test", "slow@corp.test", "other@corp.test"}


class InnerHandler:
    """The inner server: of corp.test it knows USERS only (550 5.1.1 for the others); the other
    domains take anyone; "slow@" waits 3 s."""

    def __init__(self):
        self.rcpts = []          # every RCPT it was asked (probes and real mail)
        self.mail_from = []
        self.messages = []
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.mail_from.append((address, list(mail_options)))
        envelope.mail_from = address
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpts.append(address)
        if address.lower().startswith("slow@"):
            await asyncio.sleep(3)
        if address.lower().endswith("@corp.test") and address.lower() not in USERS:
            return "550 5.1.1 <%s>: no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 accepted"

    def asked(self, addr):
        with self.lock:
            return sum(1 for r in self.rcpts if r.lower() == addr.lower())


@pytest.fixture
def inner():
    h = InnerHandler()
    c = Controller(h, hostname=INNER, port=free_port(INNER), ready_timeout=5)
    c.start()
    h.port = c.port
    h.controller = c
    yield h
    try:
        c.stop()
    except Exception:
        pass


def gateway(make_daemon, inner_port, extra_tables=None, **params):
    p = {"retry_interval": "1", "smtp_timeout": "3", "smtp_connect_timeout": "2", "verify_timeout": "10"}
    p.update({k: str(v) for k, v in params.items()})
    d = make_daemon(params=p, start=False)
    d.write_table("relaydomains",
                  "# E1: the gateway in front of the inner server\n"
                  "corp.test     %s:%d  verify=probe\n"
                  "listed.test   %s:%d  recipients=listed-users\n"
                  "open.test     %s:%d   # verify=none\n"
                  ".hosted.test                  # via the hosts table\n"
                  % (INNER, inner_port, INNER, inner_port, INNER, inner_port))
    d.write_table("listed-users", "# who exists on listed.test\nann\nBen@Listed.Test\n")
    for name, text in (extra_tables or {}).items():
        d.write_table(name, text)
    d.start()
    return d


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def rcpt(s, addr):
    return s.cmd("RCPT TO:<%s>" % addr, timeout=20)


def test_probe_accepts_known_refuses_unknown(make_daemon, inner):
    d = gateway(make_daemon, inner.port)
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        r = rcpt(s, "known@corp.test")
        assert r.code == 250, r
        r = rcpt(s, "nobody@corp.test")
        assert r.code == 550 and r.enh() == "5.1.1", r
        assert "User unknown" in r.text
        s.expect("DATA", "354")
        s.send(b"Subject: through the gateway\r\n\r\nhello inner\r\n.\r\n")
        assert s.reply().code == 250
        s.cmd("QUIT")
    # the probe asked with the null sender and never sent DATA for nobody@
    assert ("<>", []) in inner.mail_from or any(m[0] == "<>" for m in inner.mail_from), inner.mail_from
    wait_for(lambda: inner.messages, what="the message at the inner server")
    frm, tos, content = inner.messages[0]
    assert frm == "someone@outside.test" and tos == ["known@corp.test"], inner.messages
    assert b"hello inner" in content
    assert len(inner.messages) == 1
    assert re.search(r"event=relay_verify .*to=<nobody@corp\.test> .*result=unknown", d.log())
    assert re.search(r"event=verify_probe host=%s .*to=<nobody@corp\.test> result=unknown reply=550"
                     % re.escape(INNER), d.log())


def test_probe_results_are_cached(make_daemon, inner):
    d = gateway(make_daemon, inner.port)
    for _ in range(3):
        with d.session() as s:
            s.ehlo()
            s.expect("MAIL FROM:<someone@outside.test>", "250")
            assert rcpt(s, "ghost@corp.test").code == 550
            assert rcpt(s, "other@corp.test").code == 250
            s.cmd("QUIT")
    assert inner.asked("ghost@corp.test") == 1, inner.rcpts
    assert inner.asked("other@corp.test") == 1, inner.rcpts
    assert len(re.findall(r"event=relay_verify .*to=<ghost@corp\.test> .*cached=1", d.log())) == 2
    # a reload forgets them
    d.ctl("reload")
    wait_for(lambda: "event=reloaded" in d.log(), what="reload")
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        assert rcpt(s, "ghost@corp.test").code == 550
    assert inner.asked("ghost@corp.test") == 2


def test_inner_server_down_is_a_temporary_failure(make_daemon, inner):
    d = gateway(make_daemon, inner.port)
    inner.controller.stop()
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        r = rcpt(s, "known@corp.test")
        assert r.code == 451 and r.enh() == "4.4.1", r
        # the host is remembered as down for verify_tempfail_ttl: the next address fails fast
        t0 = time.monotonic()
        r = rcpt(s, "other@corp.test")
        assert r.code == 451 and time.monotonic() - t0 < 1.0, r
        # verify=none and verify=list need no inner server at RCPT time
        assert rcpt(s, "anyone@open.test").code == 250
    assert re.search(r"event=relay_verify .*result=unreachable", d.log())
    assert "event=reject reason=unknown_user" not in d.log()


def test_recipient_list(make_daemon, inner):
    d = gateway(make_daemon, inner.port)
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        assert rcpt(s, "ann@listed.test").code == 250
        assert rcpt(s, "BEN@listed.test").code == 250
        r = rcpt(s, "cat@listed.test")
        assert r.code == 550 and r.enh() == "5.1.1" and "relay recipient table" in r.text, r
    assert not inner.rcpts, "a list is not a probe"


def test_no_verification_and_hosts_table_route(make_daemon, inner):
    hosted = Sink(HOSTED, free_port(HOSTED))
    try:
        d = gateway(make_daemon, inner.port,
                    extra_tables={"hosts": "www.hosted.test %s:%d\n" % (HOSTED, hosted.port)})
        d.send(["whoever@open.test", "x@www.hosted.test"], b"Subject: open\r\n\r\nbody\r\n",
               sender="someone@outside.test")
        wait_for(lambda: inner.messages, what="open.test at the inner server")
        assert inner.messages[0][1] == ["whoever@open.test"]
        hosted.wait_messages(1)
        assert [r.split(">")[0] for r in hosted.messages[0]["rcpts"]] == ["TO:<x@www.hosted.test"]
        # no probe for verify=none: the inner server saw the real RCPT only
        assert inner.asked("whoever@open.test") == 1
    finally:
        hosted.stop()


def test_probe_never_blocks_other_sessions(make_daemon, inner):
    d = gateway(make_daemon, inner.port)
    slow = d.session(timeout=20)
    slow.ehlo()
    slow.expect("MAIL FROM:<someone@outside.test>", "250")
    t0 = time.monotonic()
    # pipelined: the probe for slow@ takes 3 s; the commands behind it wait their turn, in order
    slow.send(b"RCPT TO:<slow@corp.test>\r\nRCPT TO:<ann@listed.test>\r\nNOOP\r\n")
    time.sleep(0.3)
    # meanwhile another client is served at once
    t1 = time.monotonic()
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        assert rcpt(s, "ann@listed.test").code == 250
        s.expect("RSET", "250")
    assert time.monotonic() - t1 < 1.5
    replies = slow.replies(3, timeout=20)
    assert [r.code for r in replies] == [250, 250, 250], replies
    assert time.monotonic() - t0 >= 2.5
    slow.close()


def test_relay_rules_still_decide(make_daemon, inner):
    d = gateway(make_daemon, inner.port, extra_tables={"relay": "127.0.0.1 false\n"})
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        r = rcpt(s, "known@corp.test")
        assert r.code == 550 and r.enh() == "5.7.1", r
    assert not inner.rcpts, "refused by the rules before any probe"


def test_bad_table_is_reported(make_daemon, inner):
    d = make_daemon(start=False)
    d.write_table("relaydomains", "corp.test 10.0.0.1 verify=maybe\nok.test\nnohost.test verify=probe\n")
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode != 0
    assert re.search(r"relaydomains:1: verify=maybe", cp.err), cp.err
    assert re.search(r"relaydomains:3: verify=probe needs a host", cp.err), cp.err


def test_relay_check_sees_relay_domains(make_daemon, inner):
    d = gateway(make_daemon, inner.port)
    cp = d.ctl("relay", "check", "192.0.2.9", "someone@outside.test", "anyone@corp.test", check=False)
    assert cp.returncode == 0 and cp.out.startswith("accept"), cp.out
    assert "relay domain: corp.test, verify=probe" in cp.out, cp.out
    cp = d.ctl("relay", "check", "192.0.2.9", "someone@outside.test", "anyone@elsewhere.test", check=False)
    assert cp.returncode == 1 and cp.out.startswith("reject"), cp.out
