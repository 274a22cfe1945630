"""Dial-up operation (E5) and pull requests / ETRN client (E4), end to end.

- The link: with dialup = yes and the link down, mail for a remote domain stays queued (no
  attempt, no retry counting, no bounce) although retry_interval is 1 s; local mail is
  delivered; `tsubamectl link up` pushes it to the smart host at once.  The state survives a
  restart (run/link).  link_check_command brings the link up and down; queue_timer retries
  what failed while the link is up even when retry_interval is long.
- The hold-open window: what arrives after link up is counted; `tsubamectl link wait`
  returns when the window is over and reports it.
- `tsubamectl etrn` against EtrnStub, a raw-socket ETRN server (RFC 1985 replies 250, 251,
  252, 253, 458, 459, 500, 501, no ETRN in EHLO, STARTTLS, a server that hangs up): what it
  prints and its exit status.
- The daemon's pull requests: link up sends ETRN for every etrn_domains entry to etrn_server;
  temporary refusals are retried, 459 is not.
The end-to-end scenario with Debian's Postfix as the ISP is in test_dialup_postfix.py.

Every wait is bounded; nothing leaves loopback (dns_servers points at a closed port).
"""
import os
import re
import socket
import ssl
import threading
import time

import pytest

from delivery_peers import Sink
from tsubame_harness import make_cert, token, wait_log

SINK_IP = "127.0.0.41"
STUB_IP = "127.0.0.42"


# --------------------------------------------------------------------------
# a raw-socket ETRN server


class EtrnStub:
    """An ETRN server on ip:port, one thread per connection.

    replies: {argument: reply} where reply is a string (one reply line or several joined by
    CRLF) or a list of them, used one per ETRN of that argument (the last one repeats).
    Anything not listed gets "250 OK, queuing for node ARG started".  offer_etrn: whether EHLO
    lists ETRN; greeting: the first line; starttls: offer STARTTLS (needs cert, key);
    close_after_etrn: hang up after that many ETRN commands on a connection.
    commands: every command line received, as (connection number, line)."""

    def __init__(self, ip=STUB_IP, replies=None, offer_etrn=True, greeting="220 isp.stub.test ESMTP ready",
                 starttls=False, cert=None, key=None, close_after_etrn=None, ehlo_reply=None):
        self.ip = ip
        self.replies = dict(replies or {})
        self.used = {}
        self.offer_etrn = offer_etrn
        self.greeting = greeting
        self.starttls = starttls
        self.close_after_etrn = close_after_etrn
        self.ehlo_reply = ehlo_reply
        self.commands = []
        self.tls_sessions = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.ctx = None
        if starttls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "%s:%d" % (self.ip, self.port)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._session, args=(c, n), daemon=True).start()

    def reply_for(self, arg):
        with self.lock:
            r = self.replies.get(arg)
            if r is None:
                return "250 OK, queuing for node %s started" % arg
            if isinstance(r, list):
                i = self.used.get(arg, 0)
                self.used[arg] = i + 1
                return r[min(i, len(r) - 1)]
            return r

    def etrns(self, arg=None):
        return [l[5:] for _, l in self.commands if l.upper().startswith("ETRN ") and (arg is None or l[5:] == arg)]

    def _session(self, c, n):
        c.settimeout(10)
        f = c.makefile("rb")
        tls = False
        etrns = 0

        def send(text):
            c.sendall(text.encode("latin-1") + b"\r\n")

        try:
            send(self.greeting)
            if not self.greeting.startswith("220"):
                return
            while True:
                raw = f.readline(4096)
                if not raw:
                    return
                line = raw.decode("latin-1").rstrip("\r\n")
                with self.lock:
                    self.commands.append((n, line))
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    if self.ehlo_reply:
                        send(self.ehlo_reply)
                        continue
                    ext = ["250-isp.stub.test hello"]
                    if self.offer_etrn:
                        ext.append("250-ETRN")
                    if self.starttls and not tls:
                        ext.append("250-STARTTLS")
                    ext.append("250 8BITMIME")
                    send("\r\n".join(ext))
                elif verb == "HELO":
                    send("250 isp.stub.test")
                elif verb == "STARTTLS" and self.starttls and not tls:
                    send("220 2.0.0 ready to start TLS")
                    c = self.ctx.wrap_socket(c, server_side=True)
                    f = c.makefile("rb")
                    tls = True
                    with self.lock:
                        self.tls_sessions += 1
                elif verb == "ETRN":
                    arg = line[5:]
                    if not arg:
                        send("501 5.5.4 Syntax: ETRN domain")
                        continue
                    send(self.reply_for(arg))
                    etrns += 1
                    if self.close_after_etrn is not None and etrns >= self.close_after_etrn:
                        return
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    return
                elif verb == "NOOP":
                    send("250 ok")
                else:
                    send("502 5.5.2 not implemented")
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def stub_factory():
    made = []

    def factory(**kw):
        s = EtrnStub(**kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()


@pytest.fixture
def sink():
    s = Sink(SINK_IP)
    yield s
    s.stop()


# --------------------------------------------------------------------------
# helpers


def wait_until(pred, timeout=15.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()



def dialup_site(make_daemon, sink, **extra):
    """A site with dialup = yes sending everything to the sink as its ISP's smart host."""
    params = {
        "dialup": "yes",
        "delivery_mode": "smarthost",
        "smarthost": "%s:%d" % (sink.host, sink.port) if sink else "127.0.0.1:9",
        "smtp_tls": "none",
        "retry_interval": "1",
        "queue_timer": "0",
        "link_hold_open": "0",
        "smtp_timeout": "10",
        "smtp_connect_timeout": "5",
    }
    params.update({k: str(v) for k, v in extra.items()})
    d = make_daemon(params=params, start=False)
    d.write_table("relay", "127.0.0.1 true\n")
    d.start()
    return d


def message(tok, rcpt, sender="user@client.test"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: dial-up %s\r\nMessage-ID: <%s@example.test>\r\n\r\n"
            "body %s\r\n" % (sender, rcpt, tok, tok, tok))


def send(d, rcpt, tok, sender="user@client.test"):
    return d.send([rcpt], message(tok, rcpt, sender), sender=sender)


def sink_has(sink, tok):
    return [m for m in sink.messages if tok.encode() in m["data"]]


def queue_list(d):
    return d.ctl("queue", "list").out


# --------------------------------------------------------------------------
# the link


def test_link_down_holds_remote_mail_then_up_pushes_it(make_daemon, sink):
    d = dialup_site(make_daemon, sink)
    st = d.ctl("link", "status").out
    assert "dial-up: on" in st and "link: down (never changed)" in st, st
    tok, local = token(), token()
    send(d, "someone@far-away.test", tok)
    send(d, "bob@example.test", local)
    # Local mail is never held.
    d.wait_for_token("bob@example.test", local)
    # retry_interval is 1 s: three seconds are three chances to try, and none is taken.
    time.sleep(3)
    assert not sink.messages and sink.connections == 0, sink.transcript
    out = queue_list(d)
    assert re.search(r"someone@far-away\.test>?\(R\)", out), out
    qid = out.split()[0]
    shown = d.ctl("queue", "show", qid).out
    assert re.search(r"state=R \(waiting for remote delivery\) attempts=0 ", shown), shown
    assert "event=deferred" not in d.log("delivery") and "event=bounced" not in d.log("delivery")
    st = d.ctl("link", "status").out
    assert "remote recipients queued: 1" in st, st

    up = d.ctl("link", "up").out
    assert up.startswith("link up: 1 message (1 remote recipient) pushed"), up
    sink.wait_messages(1)
    assert len(sink_has(sink, tok)) == 1
    wait_log(d, r"event=link_up by=tsubamectl uid=0")
    wait_log(d, r"event=queue_run reason=link_up messages=1 rcpts=1")
    assert wait_until(lambda: "someone@far-away.test" not in queue_list(d), 10), queue_list(d)
    st = d.ctl("link", "status").out
    assert re.search(r"link: up since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(by tsubamectl\)", st), st
    assert "remote recipients queued: 0" in st and "sent 1 recipient" in st, st

    # Up: new mail goes at once.
    tok2 = token()
    send(d, "other@far-away.test", tok2)
    assert sink.wait(lambda: sink_has(sink, tok2), 10), sink.transcript[-20:]

    # Down again: held again, and across a restart (run/link keeps the state).
    out = d.ctl("link", "down").out
    assert out.startswith("link down: 0 remote recipients wait"), out
    assert d.ctl("link", "down").out.startswith("link was already down"), "second down"
    tok3 = token()
    send(d, "third@far-away.test", tok3)
    d.restart()
    st = d.ctl("link", "status").out
    assert "link: down since" in st and "(by tsubamectl)" in st and "remote recipients queued: 1" in st, st
    time.sleep(2)
    assert not sink_has(sink, tok3)
    with open(os.path.join(d.work, "run", "link")) as f:
        assert re.fullmatch(r"down \d+ tsubamectl\n", f.read())
    d.ctl("link", "up")
    assert sink.wait(lambda: sink_has(sink, tok3), 10), sink.transcript[-20:]


def test_link_status_without_daemon_and_dialup_off(make_daemon, sink):
    d = make_daemon(params={"delivery_mode": "smarthost", "smarthost": "%s:%d" % (sink.host, sink.port),
                            "smtp_tls": "none"}, start=False)
    d.write_table("relay", "127.0.0.1 true\n")
    d.start()
    st = d.ctl("link", "status").out
    assert st.startswith("dial-up: off (dialup = no)"), st
    cp = d.ctl("link", "up", check=False)
    assert cp.returncode == 1 and "dial-up operation is off (dialup = no)" in cp.err, (cp.returncode, cp.err)
    cp = d.ctl("link", "wait", check=False)
    assert cp.returncode == 1, cp.err
    tok = token()
    send(d, "x@far-away.test", tok)
    assert sink.wait(lambda: sink_has(sink, tok), 10)
    for bad in (["link"], ["link", "sideways"], ["link", "up", "now"], ["link", "wait", "x"]):
        cp = d.ctl(*bad, check=False)
        assert cp.returncode == 2, (bad, cp.returncode, cp.err)
    d.stop()
    cp = d.ctl("link", "status", check=False)
    assert cp.returncode == 3, cp.err
    assert "queue manager not running" in cp.err and "recorded link state: down" in cp.out, (cp.out, cp.err)
    d.start()   # the fixture stops it and checks that stop


def test_link_up_again_and_dialup_turned_off(make_daemon, sink):
    d = dialup_site(make_daemon, sink)
    d.ctl("link", "up")
    again = d.ctl("link", "up").out
    assert again.startswith("link up (it was up: a new connection): 0 messages"), again
    d.ctl("link", "down")
    tok = token()
    send(d, "x@far-away.test", tok)
    time.sleep(1.5)
    assert not sink_has(sink, tok)
    # SIGHUP with dialup = no: what waited for the link goes now
    d.params["dialup"] = "no"
    d.write_conf()
    d.ctl("reload")
    assert sink.wait(lambda: sink_has(sink, tok), 10), d.log()[-3000:]
    wait_log(d, r"event=queue_run reason=dialup_off messages=1 rcpts=1")
    assert d.ctl("link", "status").out.startswith("dial-up: off")


def test_queue_timer_retries_while_up(make_daemon, sink):
    # retry_interval is an hour: only the queue timer can bring a second attempt.
    d = dialup_site(make_daemon, sink, retry_interval="3600", queue_timer="2")
    tok = token()
    send(d, "temp-user@far-away.test", tok)          # the sink answers 450 to "temp" recipients
    time.sleep(1.5)
    assert not sink.commands("RCPT"), "tried while the link was down"
    d.ctl("link", "up")
    assert sink.wait(lambda: len(sink.commands("RCPT")) >= 1, 10)
    # at least two more attempts within two queue_timer periods and a bit
    assert sink.wait(lambda: len(sink.commands("RCPT")) >= 3, 9), sink.commands("RCPT")
    wait_log(d, r"event=queue_run reason=timer messages=1 rcpts=1")
    # down: the timer stops
    d.ctl("link", "down")
    time.sleep(0.5)
    n = len(sink.commands("RCPT"))
    time.sleep(4.5)
    assert len(sink.commands("RCPT")) == n, sink.commands("RCPT")
    out = d.ctl("queue", "show", queue_list(d).split()[0]).out
    assert re.search(r"state=R .* attempts=[3-9]", out), out


def test_link_check_command(make_daemon, sink, base_dir):
    flag = os.path.join(base_dir, "link-flag-%s" % token())
    d = dialup_site(make_daemon, sink, link_check_command="test -e %s" % flag, link_check_interval="1")
    tok = token()
    send(d, "a@far-away.test", tok)
    wait_log(d, r"event=link_state dialup=yes up=0")
    time.sleep(2)
    assert not sink_has(sink, tok)
    st = d.ctl("link", "status").out
    assert "link check: down" in st, st
    open(flag, "w").close()
    assert sink.wait(lambda: sink_has(sink, tok), 10), d.log()[-3000:]
    wait_log(d, r"event=link_up by=command")
    st = d.ctl("link", "status").out
    assert "(by command)" in st and "link check: up" in st, st
    # tsubamectl link down holds until the command's answer changes (the latest event wins)
    d.ctl("link", "down")
    tok2 = token()
    send(d, "b@far-away.test", tok2)
    time.sleep(2.5)
    assert not sink_has(sink, tok2)
    os.unlink(flag)
    wait_until(lambda: "link check: down" in d.ctl("link", "status").out, 10)
    open(flag, "w").close()
    assert sink.wait(lambda: sink_has(sink, tok2), 10), d.log()[-3000:]
    os.unlink(flag)
    wait_log(d, r"event=link_down by=command")


def test_link_check_command_timeout(make_daemon, sink):
    d = dialup_site(make_daemon, sink, link_check_command="sleep 30", link_check_interval="1",
                    link_check_timeout="1")
    wait_log(d, r"event=link_check_failed detail=timeout action=unchanged", timeout=10)
    assert "link: down" in d.ctl("link", "status").out
    # the killed command leaves nothing behind (its process group went with it)
    time.sleep(0.5)
    assert not sleepers(), sleepers()


def sleepers():
    """Live processes running exactly `sleep 30` (the check command above)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cmd == b"sleep\x0030\x00" and state != "Z":
            out.append(int(pid))
    return out


def test_hold_open_window_and_wait(make_daemon, sink):
    d = dialup_site(make_daemon, sink, link_hold_open="3")
    up = d.ctl("link", "up").out
    assert "line held open 3 s" in up, up
    st = d.ctl("link", "status").out
    assert re.search(r"line held open: [1-3] s more", st), st
    tok = token()
    # what the ISP would deliver during the window: mail for a local account
    send(d, "bob@example.test", tok, sender="someone@isp.test")
    d.wait_for_token("bob@example.test", tok)
    t0 = time.monotonic()
    out = d.ctl("link", "wait", timeout=20).out
    assert time.monotonic() - t0 < 6
    assert "received 1 message, delivered 1 recipient locally, sent 0 recipients" in out, out
    assert "line held open" not in out
    wait_log(d, r"event=link_window_closed reason=time received=1 delivered=1 sent=0 waiting=0")
    # wait with a limit shorter than the window
    d.ctl("link", "up")
    cp = d.ctl("link", "wait", "1", check=False)
    assert cp.returncode == 1 and "still held open" in cp.err, (cp.returncode, cp.err)


# --------------------------------------------------------------------------
# tsubamectl etrn against the stub


@pytest.fixture(scope="module")
def ctl_site(base_dir):
    """A configuration for tsubamectl (no daemon needed)."""
    from tsubame_harness import Daemon
    d = Daemon(base_dir, name="etrn-ctl")
    yield d


def etrn(d, *args, timeout=30):
    cp = d.ctl("etrn", *args, check=False, timeout=timeout)
    return cp.returncode, cp.out, cp.err


@pytest.mark.parametrize("code,text,rc", [
    (250, "250 OK, queuing for node site.test started", 0),
    (251, "251 OK, no messages waiting for node site.test", 0),
    (252, "252 OK, pending messages for node site.test started", 0),
    (253, "253 OK, 14 pending messages for node site.test started", 0),
    (458, "458 Unable to queue messages for node site.test", 1),
    (459, "459 Node site.test not allowed: not a customer", 1),
    (500, "500 Syntax Error", 1),
    (501, "501 Syntax Error in Parameters", 1),
])
def test_ctl_etrn_reply_codes(ctl_site, stub_factory, code, text, rc):
    stub = stub_factory(replies={"site.test": text})
    got, out, err = etrn(ctl_site, stub.addr, "site.test")
    assert got == rc, (got, out, err)
    line = out.strip()
    assert line.startswith("site.test: %s" % text), line
    if rc:
        meaning = {458: "temporary: unable to queue messages for the node", 459: "refused: node not allowed",
                   500: "failed: syntax error", 501: "failed: syntax error in parameters"}[code]
        assert meaning in line, line
    assert stub.etrns() == ["site.test"]
    assert [l for _, l in stub.commands][0].startswith("EHLO ")
    assert [l for _, l in stub.commands][-1] == "QUIT"


def test_ctl_etrn_several_and_kinds(ctl_site, stub_factory):
    stub = stub_factory(replies={"#site": "459 4.7.1 <#site>: unknown queue", "@site.test": "250 ok"})
    rc, out, err = etrn(ctl_site, stub.addr, "site.test", "@site.test", "#site")
    assert rc == 1, (rc, out, err)
    assert out.splitlines() == ["site.test: 250 OK, queuing for node site.test started",
                                "@site.test: 250 ok",
                                "#site: 459 4.7.1 <#site>: unknown queue (refused: node not allowed)"], out
    assert stub.etrns() == ["site.test", "@site.test", "#site"]
    # one session for all of them
    assert {n for n, _ in stub.commands} == {1}


def test_ctl_etrn_not_offered(ctl_site, stub_factory):
    stub = stub_factory(offer_etrn=False)
    rc, out, err = etrn(ctl_site, stub.addr, "site.test")
    assert rc == 1 and "does not offer ETRN" in err and "--force" in err, (rc, out, err)
    assert stub.etrns() == [] and [l for _, l in stub.commands][-1] == "QUIT"
    rc, out, err = etrn(ctl_site, "--force", stub.addr, "site.test")
    assert rc == 0 and "warning" in err, (rc, out, err)
    assert stub.etrns() == ["site.test"]


def test_ctl_etrn_unreachable_and_broken(ctl_site, stub_factory):
    # nothing listens: exit 4
    s = socket.socket()
    s.bind((STUB_IP, 0))
    port = s.getsockname()[1]
    s.close()
    rc, out, err = etrn(ctl_site, "%s:%d" % (STUB_IP, port), "site.test")
    assert rc == 4 and "cannot connect" in err, (rc, out, err)
    # a greeting that refuses
    stub = stub_factory(greeting="554 5.3.2 go away")
    rc, out, err = etrn(ctl_site, stub.addr, "site.test")
    assert rc == 4 and "greeting 554" in err, (rc, out, err)
    # the server hangs up after the first ETRN: the rest get no answer
    stub = stub_factory(close_after_etrn=1)
    rc, out, err = etrn(ctl_site, stub.addr, "a.test", "b.test")
    assert rc == 4, (rc, out, err)
    assert out.splitlines() == ["a.test: 250 OK, queuing for node a.test started", "b.test: no answer"], out
    # 421 ends the session
    stub = stub_factory(replies={"a.test": "421 4.3.0 shutting down"})
    rc, out, err = etrn(ctl_site, stub.addr, "a.test", "b.test")
    assert rc == 4 and "b.test: not sent" in out, (rc, out, err)
    # a reply with control bytes is printed cleaned
    stub = stub_factory(replies={"a.test": "250 ok \x1b[2J\x07 done"})
    rc, out, err = etrn(ctl_site, stub.addr, "a.test")
    assert rc == 0 and out.strip() == "a.test: 250 ok ?[2J? done", repr(out)
    # an EHLO that is refused
    stub = stub_factory(ehlo_reply="502 5.5.2 no EHLO here")
    rc, out, err = etrn(ctl_site, stub.addr, "a.test")
    assert rc == 1 and "EHLO refused" in err, (rc, out, err)


def test_ctl_etrn_starttls(ctl_site, stub_factory, base_dir):
    cert, key = make_cert(os.path.join(base_dir, "etrn-stub-cert"), cn="isp.stub.test")
    stub = stub_factory(starttls=True, cert=cert, key=key)
    rc, out, err = etrn(ctl_site, "--starttls", "-v", stub.addr, "site.test")
    assert rc == 0, (rc, out, err)
    assert stub.tls_sessions == 1 and "TLS: TLSv1." in err, err
    cmds = [l for _, l in stub.commands]
    assert cmds[:2] == ["EHLO tsubame.test", "STARTTLS"] and cmds[2] == "EHLO tsubame.test", cmds
    plain = stub_factory()
    rc, out, err = etrn(ctl_site, "--starttls", plain.addr, "site.test")
    assert rc == 4 and "STARTTLS is not offered" in err, (rc, out, err)
    assert plain.etrns() == []


def test_ctl_etrn_usage(ctl_site):
    for args in ([], ["127.0.0.1"], ["127.0.0.1:0", "a.test"], ["[x]:25", "a.test"], ["127.0.0.1", "bad domain"],
                 ["127.0.0.1", "a.test\r\nQUIT"], ["127.0.0.1", "#"], ["--timeout", "0", "127.0.0.1", "a.test"],
                 ["--bogus", "127.0.0.1", "a.test"]):
        rc, out, err = etrn(ctl_site, *args)
        assert rc == 2, (args, rc, out, err)


# --------------------------------------------------------------------------
# the daemon's pull requests against the stub


def test_link_up_sends_pull_requests(make_daemon, sink, stub_factory):
    stub = stub_factory(replies={"#site": "459 4.7.1 not allowed", "@site.test": ["458 busy", "458 busy", "250 ok"]})
    d = dialup_site(make_daemon, sink, etrn_server=stub.addr, etrn_domains="site.test @site.test #site",
                    etrn_tls="none")
    tok = token()
    send(d, "x@far-away.test", tok)
    out = d.ctl("link", "up").out
    assert "3 pull requests (ETRN) sent to %s" % stub.addr in out, out
    # the push first: the mail reaches the smart host; then the ETRNs reach the ISP
    assert sink.wait(lambda: sink_has(sink, tok), 10)
    # one session, one ETRN after the other: wait for the last of the three
    assert wait_until(lambda: stub.etrns("site.test") and stub.etrns("#site"), 10), stub.commands
    assert stub.etrns("#site") == ["#site"]
    # 458 is temporary: tried again every retry_interval (1 s), three sessions at most
    assert wait_until(lambda: len(stub.etrns("@site.test")) == 3, 10), stub.commands
    time.sleep(1.5)
    assert len(stub.etrns("@site.test")) == 3 and stub.etrns("site.test") == ["site.test"], stub.commands
    assert stub.etrns("#site") == ["#site"]                     # 459: not retried
    wait_log(d, r"event=etrn peer=%s\[%s\]:%d arg=site\.test code=250 outcome=accepted" % (
        re.escape(STUB_IP), re.escape(STUB_IP), stub.port))
    wait_log(d, r"event=etrn .*arg=\"?#site\"? code=459 outcome=refused meaning=\"node not allowed\"")
    wait_log(d, r"event=etrn .*arg=@site\.test code=458 outcome=temporary")
    wait_log(d, r"event=etrn .*arg=@site\.test code=250 outcome=accepted")
    st = d.ctl("link", "status").out
    assert "pull requests to %s: 2 accepted, 1 failed, 0 pending" % stub.addr in st, st
    # every session said EHLO and checked for ETRN before using it, and ended with QUIT
    sessions = {}
    for n, l in stub.commands:
        sessions.setdefault(n, []).append(l)
    assert len(sessions) == 3, sessions
    for cmds in sessions.values():
        assert cmds[0] == "EHLO tsubame.test" and cmds[-1] == "QUIT", cmds


def test_pull_request_failures(make_daemon, sink, stub_factory, base_dir):
    # ETRN not offered: permanent for this link-up, no retry
    stub = stub_factory(offer_etrn=False)
    d = dialup_site(make_daemon, sink, etrn_server=stub.addr, etrn_domains="site.test", etrn_tls="none")
    d.ctl("link", "up")
    wait_log(d, r"event=etrn_session .*ran=0 offered=0 .*permanent=1 detail=\"ETRN is not offered")
    wait_log(d, r"event=etrn_given_up args=1 tries=1 reason=permanent")
    time.sleep(1.5)
    assert stub.connections == 1 and stub.etrns() == []
    assert "0 accepted, 1 failed, 0 pending" in d.ctl("link", "status").out
    # mandatory TLS with a server that has none: no ETRN sent
    stub2 = stub_factory()
    d2 = dialup_site(make_daemon, None, etrn_server=stub2.addr, etrn_domains="site.test", etrn_tls="mandatory")
    d2.ctl("link", "up")
    wait_log(d2, r"event=etrn_session .*permanent=1 detail=\"TLS required \(etrn_tls = mandatory\) but STARTTLS")
    assert stub2.etrns() == []
    # opportunistic TLS with a server that has it: the ETRN goes over TLS
    cert, key = make_cert(os.path.join(base_dir, "etrn-stub-cert"), cn="isp.stub.test")
    stub3 = stub_factory(starttls=True, cert=cert, key=key)
    d3 = dialup_site(make_daemon, None, etrn_server=stub3.addr, etrn_domains="site.test")
    d3.ctl("link", "up")
    wait_log(d3, r"event=etrn .*arg=site\.test code=250 outcome=accepted .*tls=1")
    assert stub3.tls_sessions == 1
    # nobody listening: retried, then given up
    s = socket.socket()
    s.bind((STUB_IP, 0))
    port = s.getsockname()[1]
    s.close()
    d4 = dialup_site(make_daemon, None, etrn_server="%s:%d" % (STUB_IP, port), etrn_domains="site.test")
    d4.ctl("link", "up")
    wait_log(d4, r"event=etrn_given_up args=1 tries=3 reason=tries", timeout=15)
    assert "0 accepted, 1 failed, 0 pending" in d4.ctl("link", "status").out


def test_config_checks(make_daemon):
    d = make_daemon(start=False)
    d.params.update({"etrn_domains": "site.test bad_domain", "etrn_server": "isp.test:99999"})
    d.write_conf()
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode != 0
    assert "etrn_server 'isp.test:99999' is not host[:port]" in cp.err, cp.err
    assert "etrn_domains: 'bad_domain'" in cp.err, cp.err
