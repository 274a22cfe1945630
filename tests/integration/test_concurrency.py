"""Many concurrent sessions: 2,000 idle sessions are held and new sessions still work."""

import errno
import resource
import selectors
import socket
import threading
import time

import pytest

from tsubame_harness import qid_of, raise_nofile, token

N_IDLE = 2000


def open_idle_sessions(port, n, deadline):
    """Open n connections and read each one's greeting; returns (sockets, greetings)."""
    sel = selectors.DefaultSelector()
    socks, greet = [], {}
    batch = 250
    try:
        while len(socks) < n:
            new = []
            for _ in range(min(batch, n - len(socks))):
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.setblocking(False)
                rc = c.connect_ex(("127.0.0.1", port))
                assert rc in (0, errno.EINPROGRESS), rc
                socks.append(c)
                new.append(c)
                greet[c] = b""
                sel.register(c, selectors.EVENT_READ)
            waiting = set(new)
            while waiting:
                left = deadline - time.monotonic()
                assert left > 0, "only %d of %d sessions greeted in time" % (
                    len(socks) - len(waiting), len(socks))
                for key, _ in sel.select(timeout=min(left, 1.0)):
                    c = key.fileobj
                    try:
                        data = c.recv(4096)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        data = b""
                    assert data, "session %d closed before its greeting (got %r)" % (socks.index(c), greet[c])
                    greet[c] += data
                    if b"\r\n" in greet[c]:
                        sel.unregister(c)
                        waiting.discard(c)
    finally:
        sel.close()
    return socks, greet


def test_2000_idle_sessions(make_daemon):
    limit = raise_nofile()
    if limit < N_IDLE + 200:
        pytest.skip("RLIMIT_NOFILE %d too low for %d sessions" % (limit, N_IDLE))
    d = make_daemon()
    t0 = time.monotonic()
    socks = []
    try:
        socks, greet = open_idle_sessions(d.port, N_IDLE, time.monotonic() + 90)
        opened = time.monotonic() - t0
        bad = [g for g in greet.values() if not g.startswith(b"220 ")]
        assert not bad, "%d sessions got no 220: %r" % (len(bad), bad[:3])
        # a new session gets full service while 2000 are held
        tok = token()
        qid = d.send("demo@example.test", "Subject: busy %s\r\n\r\nx\r\n" % tok)
        assert qid
        d.wait_for_token("demo@example.test", tok, timeout=20)
        # the held ones are alive: sample some of them
        for c in socks[::100]:
            c.setblocking(True)
            c.settimeout(10)
            c.sendall(b"NOOP\r\n")
            assert c.recv(100).startswith(b"250"), "held session lost"
        print("opened %d sessions in %.2fs" % (N_IDLE, opened))
    finally:
        for c in socks:
            c.close()
    # after the mass close the daemon still works
    d.send("demo@example.test", "Subject: after %s\r\n\r\nx\r\n" % tok)
    d.wait_for_token("demo@example.test", "after %s" % tok, timeout=20)
    assert d.running()


def test_parallel_senders(make_daemon):
    """20 threads x 5 messages each, all delivered exactly once."""
    d = make_daemon()
    toks = [token() for _ in range(100)]
    errors = []

    def worker(chunk):
        try:
            with d.smtp(timeout=30) as s:
                s.ehlo()
                for t in chunk:
                    s.sendmail("par@client.test", ["demo@example.test"], "Subject: par %s\r\n\r\nx\r\n" % t)
                s.quit()
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(toks[i::20],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    d.wait_for_messages("demo@example.test", 100, timeout=30)
    msgs = d.messages("demo@example.test")
    for t in toks:
        assert sum(1 for m in msgs if t.encode() in m) == 1, t
