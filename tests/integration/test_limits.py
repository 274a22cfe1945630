"""Limits and their exact codes: size, recipients, line length, sessions, errors, timeouts, quota."""

import os
import re
import signal
import socket
import time

from tsubame_harness import HOSTNAME, Session, SessionClosed, free_port, qid_of, token

# The harness site has max_message_size = 200000 and max_recipients = 5.


def test_size_declared_too_big(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test> SIZE=200001", "552 5.3.4 Message size exceeds fixed limit")
        s.expect("MAIL FROM:<a@client.test> SIZE=200000", "250 2.1.0")
        s.expect("RSET", "250")
        s.expect("MAIL FROM:<a@client.test> SIZE=99999999999999999999999", "552 5.3.4")
        s.expect("MAIL FROM:<a@client.test> SIZE=abc", "501 5.5.4")
        s.expect("NOOP", "250")


def test_message_too_big_after_data(tsubame):
    tok = token().encode()
    with tsubame.session(timeout=30) as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(b"Subject: big " + tok + b"\r\n\r\n" + (b"b" * 998 + b"\r\n") * 260 + b".\r\n")
        r = s.reply()
        assert r.startswith("552 5.3.4 Message size exceeds fixed limit"), r
        s.expect("NOOP", "250 2.0.0")
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(b"Subject: small " + tok + b"\r\n\r\nok\r\n.\r\n")
        assert qid_of(s.reply())
    tsubame.wait_for_token("demo@example.test", b"small " + tok)
    assert tsubame.find("demo@example.test", b"big " + tok) == []


def test_max_recipients(tsubame):
    tok = token()
    rcpts = ["demo@example.test", "bob@example.test", "carol@other.test", "info@example.test", "samedom@example.test"]
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        for r in rcpts:
            s.expect("RCPT TO:<%s>" % r, "250 2.1.5")
        s.expect("RCPT TO:<rw@example.test>", "452 4.5.3 Error: too many recipients")
        s.expect("RCPT TO:<sales@example.test>", "452 4.5.3")
        s.expect("DATA", "354")
        s.send(("Subject: maxrcpt %s\r\n\r\nx\r\n.\r\n" % tok).encode())
        assert qid_of(s.reply())
    tsubame.wait_for_token("bob@example.test", tok)
    tsubame.wait_for_token("carol@other.test", tok)
    tsubame.wait_for_token("demo@example.test", tok)


def test_line_length_limit(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        # max_line_length 2048 counts the CRLF
        ok = b"NOOP " + b"a" * (2048 - 7)
        assert len(ok) + 2 == 2048
        s.expect(ok, "250 2.0.0")
        s.expect(ok + b"a", "500 5.5.2 Error: line too long")
        s.expect(b"NOOP " + b"a" * 3000, "500 5.5.2 Error: line too long")
        s.expect("NOOP", "250 2.0.0")
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect(b"RCPT TO:<" + b"x" * 4000 + b"@example.test>", "500 5.5.2")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("QUIT", "221")


def test_max_sessions(make_daemon):
    d = make_daemon(params={"max_sessions": "3"})
    held = []
    try:
        # the start-up probe's slot is released asynchronously: retry a 421 for a moment
        deadline = time.monotonic() + 5
        while len(held) < 3:
            s = d.session()
            if s.greeting.code == 220:
                held.append(s)
                continue
            s.close()
            assert time.monotonic() < deadline, "only %d sessions of 3 admitted: %r" % (len(held), s.greeting)
            time.sleep(0.1)
        s4 = Session(d.port, read_greeting=False)
        r = s4.reply()
        assert r.startswith("421 4.7.0 %s Error: too many connections" % HOSTNAME), r
        assert s4.wait_closed(5)
        s4.close()
        # the held sessions still work
        for s in held:
            s.expect("NOOP", "250")
        held.pop().expect("QUIT", "221")
        # a slot is free again (the daemon notices the close asynchronously)
        deadline = time.monotonic() + 5
        while True:
            s5 = Session(d.port, read_greeting=False)
            r = s5.reply()
            if r.code == 220 or time.monotonic() > deadline:
                break
            s5.close()
            time.sleep(0.1)
        assert r.code == 220, r
        s5.ehlo()
        s5.close()
    finally:
        for s in held:
            s.close()


def test_max_errors(make_daemon):
    d = make_daemon(params={"max_errors": "3"})
    with d.session() as s:
        s.ehlo()
        fails = 0
        final = None
        for _ in range(10):
            try:
                r = s.cmd("BOGUS")
            except SessionClosed:
                break
            if r.code == 421:
                final = r
                break
            assert r.startswith("500 5.5.2"), r
            fails += 1
        assert final is not None and final.startswith("421 4.7.0 %s Error: too many errors" % HOSTNAME), final
        assert fails in (3, 4), fails
        assert s.wait_closed(5)


def test_max_errors_counts_any_4xx_5xx(make_daemon):
    d = make_daemon(params={"max_errors": "4"})
    with d.session() as s:
        s.ehlo()
        s.expect("RCPT TO:<demo@example.test>", "503")
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<nobody@example.test>", "550")
        s.expect("RCPT TO:<x@elsewhere.test>", "550")
        s.expect("NOOP", "250")
        r = s.cmd("XYZZY")  # the 4th error
        if r.code == 500:
            r = s.cmd("XYZZY")  # past the limit in any reading of "max_errors"
        assert r.startswith("421 4.7.0"), r
        assert s.wait_closed(5)


def test_command_and_data_timeout(make_daemon):
    d = make_daemon(params={"command_timeout": "2", "data_timeout": "2"})
    t0 = time.monotonic()
    with d.session(timeout=8) as s:
        r = s.reply(timeout=8)
        took = time.monotonic() - t0
        assert r.startswith("421 4.4.2 %s Error: timeout exceeded" % HOSTNAME), r
        assert 1.5 <= took <= 6, took
        assert s.wait_closed(3)
    tok = token().encode()
    with d.session(timeout=8) as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<demo@example.test>", "250")
        s.expect("DATA", "354")
        s.send(b"Subject: timeout " + tok + b"\r\n\r\nhalf a mess")
        r = s.reply(timeout=8)
        assert r.startswith("421 4.4.2"), r
        assert s.wait_closed(3)
    # activity resets the timer: a NOOP every second keeps the session for > 2 s
    with d.session(timeout=8) as s:
        for _ in range(4):
            time.sleep(1.0)
            s.expect("NOOP", "250")
    sent = token()
    d.send("demo@example.test", "Subject: sentinel %s\r\n\r\nx\r\n" % sent)
    d.wait_for_token("demo@example.test", sent)
    assert d.find("demo@example.test", tok) == []


def test_quota_per_account_at_rcpt(make_daemon):
    accounts = [("demo@example.test", "pw", []), ("small@example.test", "pw", ["-l", "10000"]),
                ("medium@example.test", "pw", ["-l", "50000"])]
    d = make_daemon(accounts=accounts, aliases="")
    d.fill_mailbox("small@example.test", 15000)
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<small@example.test>", "552 5.2.2 <small@example.test>: Mailbox full")
        s.expect("RCPT TO:<medium@example.test>", "250 2.1.5")
        s.expect("RSET", "250")
        # declared size beyond what is left
        s.expect("MAIL FROM:<a@client.test> SIZE=60000", "250 2.1.0")
        s.expect("RCPT TO:<medium@example.test>", "552 5.2.2")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("RSET", "250")
        s.expect("MAIL FROM:<a@client.test> SIZE=1000", "250 2.1.0")
        s.expect("RCPT TO:<medium@example.test>", "250 2.1.5")


def test_quota_global(make_daemon):
    d = make_daemon(params={"mailbox_size_limit": "10000"})
    d.fill_mailbox("bob@example.test", 12000)
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<bob@example.test>", "552 5.2.2")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("RSET", "250")
        s.expect("MAIL FROM:<a@client.test> SIZE=20000", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "552 5.2.2")


def test_domain_mailbox_limit(make_daemon):
    d = make_daemon(domains="example.test mailbox_limit=10000\nother.test\n",
                    accounts=[("demo@example.test", "pw", []), ("carol@other.test", "pw", [])], aliases="")
    d.fill_mailbox("demo@example.test", 12000)
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "552 5.2.2")
        s.expect("RCPT TO:<carol@other.test>", "250 2.1.5")


def test_listen_list_and_hidden_ip(make_daemon):
    port = free_port()
    d = make_daemon(params={"listen": "127.0.0.1:%d, 127.0.0.2:%d 127.0.0.3:%d" % (port, port, port),
                            "hidden_ips": "127.0.0.3"}, port=port)
    for host in ("127.0.0.1", "127.0.0.2"):
        s = Session(port, host=host)
        assert s.greeting.code == 220
        s.close()
    try:
        c = socket.create_connection(("127.0.0.3", port), timeout=5)
    except ConnectionRefusedError:
        return
    try:
        c.settimeout(3)
        try:
            data = c.recv(100)
        except socket.timeout:
            data = b"(silence)"
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"220"), data
    finally:
        c.close()


def _queue_pid(d):
    """The queue process of the running daemon, from the master's child_started log line."""
    pids = re.findall(r"child=queue pid=(\d+)", d.log("main"))
    assert pids, d.log("main")
    return int(pids[-1])


def test_stalled_queue_is_a_bounded_wait(make_daemon):
    """Invariant 5: when the queue does not answer, the session gets 421 4.3.0 after one timeout."""
    d = make_daemon(params={"command_timeout": "2", "data_timeout": "2"})
    qpid = _queue_pid(d)
    os.kill(qpid, signal.SIGSTOP)
    try:
        with d.session(timeout=10) as s:
            s.ehlo()
            s.expect("MAIL FROM:<a@client.test>", "250")
            s.expect("RCPT TO:<demo@example.test>", "250")
            t0 = time.monotonic()
            s.send(b"DATA\r\n")
            r = s.reply(timeout=10)
            took = time.monotonic() - t0
            assert r.startswith("421 4.3.0 %s Error: queue not responding" % HOSTNAME), r
            assert 1.5 <= took <= 8, took
            assert s.wait_closed(3)
    finally:
        os.kill(qpid, signal.SIGCONT)
    assert "event=queue_timeout" in d.log("main")
    # the queue resumes and the daemon serves again
    tok = token()
    d.send("demo@example.test", "Subject: after stall %s\r\n\r\nx\r\n" % tok)
    d.wait_for_token("demo@example.test", tok)
