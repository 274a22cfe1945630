"""tsubamectl queue flush / retry / hold / release against the running daemon (its queue manager's
control socket, work_dir/run/queue.ctl).

Messages wait in the queue on a real retry timer: remote deliveries to a loopback port where nothing
listens yet (dnslib DNS on loopback, delivery_peers.py), with retry_interval = 1h, so only the control
commands can make them go before the end of the test.  Then an SMTP sink starts on that port.
"""
import os
import re
import socket
import stat
import time

import pytest

from delivery_peers import DnsServer, Sink
from tsubame_harness import IS_ROOT, RUN_USER, free_port

HOST_A, HOST_B = "127.0.0.21", "127.0.0.22"
ZONE = {
    "a.test": [("A", HOST_A)],
    "b.test": [("A", HOST_B)],
}
HANG_HOST = "127.0.0.23"


@pytest.fixture(scope="module")
def dns():
    d = DnsServer(dict(ZONE, **{"hang.test": [("A", HANG_HOST)]}))
    yield d
    d.stop()



def common_port():
    """A port free on both sink addresses (delivery_port is one for every MX)."""
    for _ in range(50):
        p = free_port(HOST_A)
        s = socket.socket()
        try:
            s.bind((HOST_B, p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no common free port")


def site(make_daemon, dns_addr, port, **extra):
    params = {
        "dns_servers": dns_addr,
        "delivery_port": str(port),
        "retry_interval": "1h",          # only a control command can make a message go again in time
        "smtp_timeout": "3",
        "smtp_connect_timeout": "2",
    }
    params.update({k: str(v) for k, v in extra.items()})
    d = make_daemon(params=params, start=False)
    d.write_table("relay", "127.0.0.1 true\n")
    d.start()
    return d


def body(tok):
    return ("From: sender@client.test\r\nTo: rcpt@remote\r\nSubject: queue control %s\r\n"
            "Message-ID: <%s@client.test>\r\n\r\nline %s\r\n" % (tok, tok, tok)).encode()


def ctl_sock(d):
    return os.path.join(d.work, "run", "queue.ctl")


def show(d, qid):
    return d.ctl("queue", "show", qid, check=False).out


def wait_sleeping(d, qid, attempts=1, timeout=15.0):
    """Until the queue manager has written the failed attempt and put the message to sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = show(d, qid)
        if re.search(r"attempts=%d next-try=\d{4}-" % attempts, out):
            return out
        time.sleep(0.1)
    raise AssertionError("%s not waiting for a retry after %.0fs:\n%s\n%s" % (qid, timeout, show(d, qid),
                                                                           d.log("delivery")[-2000:]))


def folder_of(d, qid):
    for line in d.ctl("queue", "list").out.splitlines():
        if line.startswith(qid + " "):
            return line.split()[1]
    return None


def wait_gone(d, qid, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder_of(d, qid) is None:
            return
        time.sleep(0.1)
    raise AssertionError("%s still queued:\n%s" % (qid, d.ctl("queue", "list").out))


def tokens(sink):
    return [m["data"] for m in sink.messages]


def has_line(d, pattern, name="main", timeout=10.0):
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(rx.search(l) for l in d.log(name).splitlines()):
            return True
        time.sleep(0.05)
    return False


def raw(d, data, timeout=5.0):
    """Send bytes on the control socket, return everything the queue manager answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(ctl_sock(d))
    try:
        if data:
            s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                # the manager closed with our extra bytes unread (Linux then resets): its answer came first
                return out
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


# --------------------------------------------------------------------------


def test_flush_delivers_now(make_daemon, dns, sinks):
    port = common_port()
    d = site(make_daemon, dns.addr, port)
    tok = "tokflush%d" % os.getpid()
    qid = d.send("user@a.test", body(tok))
    wait_sleeping(d, qid)
    assert folder_of(d, qid) == "active/n1"
    sink = sinks(HOST_A, port)
    t0 = time.monotonic()
    cp = d.ctl("queue", "flush")
    assert cp.out.strip() == "flush: 1 message, 1 recipient scheduled for delivery now", cp.out
    sink.wait_messages(1, timeout=10)
    assert time.monotonic() - t0 < 10          # the retry timer says an hour
    assert tok.encode() in sink.messages[0]["data"]
    wait_gone(d, qid)
    assert has_line(d, r"event=flush by=tsubamectl uid=\d+ domain=\* messages=1 rcpts=1")
    # nothing left: a flush is not an error
    assert d.ctl("queue", "flush").out.strip() == "flush: 0 messages, 0 recipients scheduled for delivery now"


def test_flush_domain_only_touches_that_domain(make_daemon, dns, sinks):
    port = common_port()
    d = site(make_daemon, dns.addr, port)
    tok1, tok2 = "tokdom1x%d" % os.getpid(), "tokdom2x%d" % os.getpid()
    q1 = d.send(["one@a.test", "two@b.test"], body(tok1))
    q2 = d.send("three@b.test", body(tok2))
    wait_sleeping(d, q1)
    wait_sleeping(d, q2)
    sa, sb = sinks(HOST_A, port), sinks(HOST_B, port)
    assert d.ctl("queue", "flush", "nothing.test").out.strip() == \
        "flush nothing.test: 0 messages, 0 recipients scheduled for delivery now"
    cp = d.ctl("queue", "flush", "A.Test.")          # case and a trailing dot do not matter
    assert cp.out.strip() == "flush A.Test: 1 message, 1 recipient scheduled for delivery now", cp.out
    sa.wait_messages(1, timeout=10)
    assert [r.split(">")[0] for r in sa.messages[0]["rcpts"]] == ["TO:<one@a.test"]
    time.sleep(1.5)
    assert not sb.messages and sb.connections == 0, sb.transcript
    assert re.search(r"two@b\.test\(R\)", d.ctl("queue", "list").out)
    cp = d.ctl("queue", "flush", "b.test")
    assert cp.out.strip() == "flush b.test: 2 messages, 2 recipients scheduled for delivery now", cp.out
    sb.wait_messages(2, timeout=10)
    wait_gone(d, q1)
    wait_gone(d, q2)
    assert len(sa.messages) == 1


def test_retry_one_message(make_daemon, dns, sinks):
    port = common_port()
    d = site(make_daemon, dns.addr, port)
    tok1, tok2 = "tokretry1x%d" % os.getpid(), "tokretry2x%d" % os.getpid()
    q1 = d.send("one@a.test", body(tok1))
    q2 = d.send("two@a.test", body(tok2))
    wait_sleeping(d, q1)
    wait_sleeping(d, q2)
    sink = sinks(HOST_A, port)
    cp = d.ctl("queue", "retry", q2)
    assert cp.out.strip() == "retry %s: 1 recipient scheduled for delivery now" % q2, cp.out
    sink.wait_messages(1, timeout=10)
    assert tok2.encode() in sink.messages[0]["data"]
    wait_gone(d, q2)
    time.sleep(1.0)
    assert len(sink.messages) == 1
    assert folder_of(d, q1) == "active/n1"
    assert has_line(d, r"qid=%s event=retry by=tsubamectl" % re.escape(q2))
    d.ctl("queue", "retry", q1)
    sink.wait_messages(2, timeout=10)
    wait_gone(d, q1)


def test_hold_survives_restart_and_release_delivers(make_daemon, dns, sinks):
    port = common_port()
    d = site(make_daemon, dns.addr, port)
    tok = "tokhold%d" % os.getpid()
    qid = d.send("user@a.test", body(tok))
    wait_sleeping(d, qid)
    cp = d.ctl("queue", "hold", qid)
    assert cp.out.strip() == "%s: held" % qid, cp.out
    assert has_line(d, r"qid=%s event=hold by=tsubamectl" % re.escape(qid))
    assert [os.path.basename(p) for p in d.queue_files("hold")] == [qid]
    assert not d.queue_files("active")
    listing = d.ctl("queue", "list").out
    assert re.search(r"^%s hold \d+ " % re.escape(qid), listing, re.M), listing
    assert "folder: hold" in show(d, qid)
    # a held message is not scheduled: not by a flush, not by retry, not by the timer
    sink = sinks(HOST_A, port)
    assert d.ctl("queue", "flush").out.strip().startswith("flush: 0 messages")
    cp = d.ctl("queue", "retry", qid, check=False)
    assert cp.returncode == 1 and "on hold" in cp.err, (cp.returncode, cp.err)
    assert d.ctl("queue", "hold", qid).out.strip() == "%s: already held" % qid
    time.sleep(1.5)
    assert not sink.messages and sink.connections == 0
    # ... nor by a restart: hold/ is not recovered
    d.restart()
    time.sleep(2.0)
    assert not sink.messages and sink.connections == 0, sink.transcript
    assert folder_of(d, qid) == "hold"
    assert "qid=%s event=recovered" % qid not in d.log()
    cp = d.ctl("queue", "release", qid)
    assert cp.out.strip() == "%s: released, 1 recipient scheduled for delivery now" % qid, cp.out
    sink.wait_messages(1, timeout=10)
    assert tok.encode() in sink.messages[0]["data"]
    wait_gone(d, qid)
    assert has_line(d, r"qid=%s event=release by=tsubamectl" % re.escape(qid))
    assert not d.queue_files("hold")


def test_hold_all_and_release_all(make_daemon, dns, sinks):
    port = common_port()
    d = site(make_daemon, dns.addr, port)
    qids = [d.send("u%d@a.test" % i, body("tokall%d" % i)) for i in range(3)]
    for q in qids:
        wait_sleeping(d, q)
    cp = d.ctl("queue", "hold", "ALL")
    assert cp.out.strip() == "hold: 3 messages held", cp.out
    assert sorted(os.path.basename(p) for p in d.queue_files("hold")) == sorted(qids)
    assert all(folder_of(d, q) == "hold" for q in qids)
    sink = sinks(HOST_A, port)
    assert d.ctl("queue", "flush").out.strip().startswith("flush: 0 messages")
    cp = d.ctl("queue", "release", "ALL")
    assert cp.out.strip() == "release: 3 messages released, 3 recipients scheduled for delivery now", cp.out
    sink.wait_messages(3, timeout=15)
    for q in qids:
        wait_gone(d, q)
    assert d.ctl("queue", "hold", "ALL").out.strip() == "hold: 0 messages held"
    assert d.ctl("queue", "release", "ALL").out.strip().startswith("release: 0 messages released")


def test_hold_during_delivery_waits_for_the_result(make_daemon, dns, sinks):
    """A hold that arrives while the message is being delivered is applied when the delivery returns."""
    port = free_port(HANG_HOST)
    sink = sinks(HANG_HOST, port, modes=("hangehlo",))
    d = site(make_daemon, dns.addr, port, smtp_timeout=3)
    tok = "tokinflight%d" % os.getpid()
    qid = d.send("user@hang.test", body(tok))
    assert sink.wait(lambda: sink.commands("EHLO"), 10), sink.transcript
    cp = d.ctl("queue", "hold", qid)
    assert cp.out.strip() == "%s: hold pending: a delivery is in progress; held when it returns" % qid, cp.out
    assert folder_of(d, qid) == "active/n1"
    # the time-out comes back as a temporary failure, it is written, then the file moves
    assert has_line(d, r"qid=%s event=hold by=tsubamectl after=deliveries" % re.escape(qid), timeout=15), d.log()[-3000:]
    assert folder_of(d, qid) == "hold"
    assert re.search(r"attempts=1 ", show(d, qid)), show(d, qid)
    sink.modes.discard("hangehlo")
    cp = d.ctl("queue", "release", qid)
    assert "released" in cp.out
    sink.wait_messages(1, timeout=15)
    wait_gone(d, qid)


def test_pending_hold_is_kept_by_a_stop_and_can_be_cancelled(make_daemon, dns, sinks):
    port = free_port(HANG_HOST)
    sink = sinks(HANG_HOST, port, modes=("hangehlo",))
    d = site(make_daemon, dns.addr, port, smtp_timeout=60)
    q1 = d.send("one@hang.test", body("tokpend1"))
    assert sink.wait(lambda: len(sink.commands("EHLO")) >= 1, 10), sink.transcript
    assert "hold pending" in d.ctl("queue", "hold", q1).out
    # release before the delivery returns: the hold is called off
    assert d.ctl("queue", "release", q1).out.strip() == "%s: pending hold cancelled" % q1
    assert has_line(d, r"qid=%s event=hold_cancelled" % re.escape(q1))
    assert "hold pending" in d.ctl("queue", "hold", q1).out
    # a stop abandons the delivery in flight: the hold becomes durable instead of being lost
    d.restart()
    assert has_line(d, r"qid=%s event=hold by=tsubamectl after=stop" % re.escape(q1)), d.log()[-3000:]
    assert folder_of(d, q1) == "hold"
    sink.modes.discard("hangehlo")
    d.ctl("queue", "release", q1)
    sink.wait_messages(1, timeout=15)
    wait_gone(d, q1)


def test_errors_and_exit_codes(make_daemon, dns, sinks):
    port = common_port()
    d = site(make_daemon, dns.addr, port)
    qid = d.send("user@a.test", body("tokerr"))
    wait_sleeping(d, qid)
    unknown = "0000000000000000.n1"
    for verb in ("hold", "release", "retry"):
        cp = d.ctl("queue", verb, unknown, check=False)
        assert cp.returncode == 1, (verb, cp.returncode, cp.out, cp.err)
        assert "no such message" in cp.err, (verb, cp.err)
    cp = d.ctl("queue", "release", qid, check=False)
    assert cp.returncode == 1 and "is not on hold" in cp.err, cp.err
    usage = [("flush", "bad..domain"), ("flush", "-x.test"), ("flush", "a b"), ("hold", "not-a-qid"),
             ("hold", "all"), ("retry", "ALL"), ("release",), ("hold",), ("retry",), ("flush", "a.test", "b.test")]
    for args in usage:
        cp = d.ctl("queue", *args, check=False)
        assert cp.returncode == 2, (args, cp.returncode, cp.out, cp.err)
        assert "usage:" in cp.err, (args, cp.err)
    cp = d.ctl("queue", "flush", "bad..domain", check=False)
    assert "'bad..domain' is not a domain name" in cp.err, cp.err
    cp = d.ctl("queue", "hold", "not-a-qid", check=False)
    assert "'not-a-qid' is not a queue id" in cp.err, cp.err
    # the message is untouched by all that
    assert folder_of(d, qid) == "active/n1"
    # the socket: the mail user's, nobody else's
    st = os.lstat(ctl_sock(d))
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    if IS_ROOT:
        import pwd
        assert st.st_uid == pwd.getpwnam(RUN_USER).pw_uid
    # daemon stopped: a clear message and exit status 3
    assert not d.stop()
    assert not os.path.exists(ctl_sock(d))
    for args in (("flush",), ("hold", qid), ("release", "ALL"), ("retry", qid)):
        cp = d.ctl("queue", *args, check=False)
        assert cp.returncode == 3, (args, cp.returncode, cp.err)
        assert cp.err.strip() == "tsubamectl: queue manager not running (no socket at %s)" % ctl_sock(d), cp.err
    # a stale socket file left by a crash: refused, still "not running"
    d.start()
    d.kill9()
    assert os.path.exists(ctl_sock(d))
    cp = d.ctl("queue", "flush", check=False)
    assert cp.returncode == 3 and "queue manager not running (nothing listens on" in cp.err, cp.err
    # and the next start takes the path over
    d.start()
    assert d.ctl("queue", "flush").out.startswith("flush: 1 message")
    # (let that attempt finish: a stop during its MX lookup trips a use-after-free in deliver's remote_free)
    wait_sleeping(d, qid, attempts=2)


def test_protocol_limits(make_daemon, dns):
    d = site(make_daemon, dns.addr, common_port())
    assert raw(d, b"flush\n") == b"ok messages=0 recipients=0\n"
    assert raw(d, b"FLUSH\n") == b"error bad-request unknown command\n"
    assert raw(d, b"flush\r\n") == b"error bad-request control character in request\n"
    assert raw(d, b"flush  a.test\n").startswith(b"error bad-request ")
    assert raw(d, b"flush\nflush\n") == b"error bad-request one request per connection\n"
    assert raw(d, b"hold ALL extra\n").startswith(b"error bad-request ")
    assert raw(d, b"x" * 600) == b"error bad-request request too long\n"
    assert raw(d, b"flush " + b"a" * 600 + b"\n") == b"error bad-request request too long\n"
    # bounded number of connections: the ninth is turned away at once, the others still work
    idle = []
    try:
        for _ in range(8):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(ctl_sock(d))
            idle.append(s)
        time.sleep(0.3)
        assert raw(d, b"") == b"error busy too many control connections; try again\n"
        cp = d.ctl("queue", "flush", check=False)
        assert cp.returncode == 1 and "too many control connections" in cp.err, cp.err
        idle[0].sendall(b"flush\n")
        idle[0].settimeout(5)
        assert idle[0].recv(100) == b"ok messages=0 recipients=0\n"
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    d.ctl("queue", "flush")
    # bounded lifetime: a client that never finishes its request is closed
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(ctl_sock(d))
    s.sendall(b"flu")
    t0 = time.monotonic()
    assert s.recv(100) == b""
    assert 8 < time.monotonic() - t0 < 15
    s.close()
    assert has_line(d, r"event=control_timeout")
    assert has_line(d, r"event=control_refused reason=busy")
    assert d.running()
