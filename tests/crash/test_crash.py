"""
Crash tests (invariants 1 and 2): kill -9 the whole daemon process group at bad moments,
restart it on the same spool, and check that no acknowledged message is lost and that an
unacknowledged one leaves nothing behind.
"""

import os
import random
import smtplib
import threading
import time

from tsubame_harness import qid_of, token


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def assert_no_corrupt(d):
    bad = d.queue_files("corrupt")
    assert not bad, "files in corrupt/: %r" % bad


def test_kill_during_data(make_daemon):
    d = make_daemon()
    tok = token().encode()
    s = d.session()
    s.ehlo()
    s.expect("MAIL FROM:<crash@client.test>", "250")
    s.expect("RCPT TO:<demo@example.test>", "250")
    s.expect("DATA", "354")
    s.send(b"Subject: half " + tok + b"\r\n\r\n" + b"first half of the body\r\n" * 200)
    time.sleep(0.3)  # let the server take the half in
    d.kill9()
    s.close()
    d.start()
    # recovery removes the partial message
    assert wait_until(lambda: not d.queue_files("incoming"), 10), \
        "incoming/ not empty after restart: %r" % d.queue_files("incoming")
    assert_no_corrupt(d)
    sent = token()
    d.send("demo@example.test", "Subject: sentinel %s\r\n\r\nx\r\n" % sent)
    d.wait_for_token("demo@example.test", sent)
    assert d.find("demo@example.test", tok) == []
    assert_no_corrupt(d)


def test_kill_right_after_250(make_daemon):
    d = make_daemon()
    toks = []
    for i in range(3):
        tok = token().encode()
        s = d.session()
        s.ehlo()
        s.send(b"MAIL FROM:<crash@client.test>\r\nRCPT TO:<demo@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert [r.code for r in s.replies(4)] == [250, 250, 250, 354]
        s.send(b"Subject: acked " + tok + b"\r\n\r\n" + b"body line\r\n" * (10 ** i) + b".\r\n")
        r = s.reply()
        d.kill9()  # at once: delivery has at best just started
        assert qid_of(r), r
        s.close()
        toks.append(tok)
        d.start()
        for user in ("demo@example.test", "bob@example.test"):
            found = d.wait_for_token(user, tok, timeout=15)
            assert 1 <= len(found) <= 2, (user, len(found))
    assert_no_corrupt(d)
    assert wait_until(lambda: not any(d.queue_files(q) for q in ("incoming", "active", "deferred")), 15), \
        d.queue_snapshot()


def test_kill_during_delivery_stream(make_daemon):
    """6 client threads stream ~240 messages; the group is SIGKILLed twice at random points."""
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    d = make_daemon(params={"deliver_processes": "4"})
    total = 240
    kill_points = sorted(rnd.sample(range(20, total - 40), 2))
    acked = []          # tokens whose 250 was received
    lock = threading.Lock()
    stop = threading.Event()
    errors = []
    notes = []
    filler = "".join("line %d of filler text for a mid-sized message\r\n" % i for i in range(400))  # ~20 KB

    def sender():
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", d.port, local_hostname="crash.client", timeout=10) as s:
                    s.ehlo()
                    while not stop.is_set():
                        with lock:
                            if len(acked) >= total:
                                return
                        t = token()
                        s.sendmail("stream@client.test", ["demo@example.test"],
                                   "Subject: stream %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s" % (t, t, filler))
                        with lock:
                            acked.append(t)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.02)
            except Exception as e:  # reported by the main thread
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(6)]
    for th in threads:
        th.start()
    try:
        for kp in kill_points:
            deadline = time.monotonic() + 60
            while len(acked) < kp and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert len(acked) >= kp, "seed %d: only %d messages acknowledged" % (seed, len(acked))
            time.sleep(rnd.random() * 0.005)
            n_acked = len(acked)
            d.kill9()
            notes.append("killed after %d acked, %d delivered" % (n_acked, len(d.message_files("demo@example.test"))))
            d.start()
        for th in threads:
            th.join(120)
        assert not any(th.is_alive() for th in threads), "seed %d: senders did not finish (%d acked)" % (seed, len(acked))
    finally:
        stop.set()
    print("seed %d: %s" % (seed, "; ".join(notes)))
    assert not errors, errors
    assert len(acked) >= total

    def all_there():
        msgs = d.messages("demo@example.test")
        return all(any(t.encode() in m for m in msgs) for t in acked)

    wait_until(all_there, 30, step=0.2)
    msgs = d.messages("demo@example.test")
    lost, dup3 = [], []
    for t in acked:
        n = sum(1 for m in msgs if t.encode() in m)
        if n == 0:
            lost.append(t)
        elif n > 1 + len(kill_points):
            # Each crash may repeat a delivery that was not yet marked done (invariant 2:
            # a duplicate, never a loss), so two kills may give a third copy, never more.
            dup3.append((t, n))
    assert not lost, "seed %d: %d acknowledged message(s) lost: %r\nqueue %r" % (seed, len(lost), lost[:5], d.queue_snapshot())
    assert not dup3, "seed %d: delivered more than once per crash: %r" % (seed, dup3[:5])
    assert_no_corrupt(d)
    assert wait_until(lambda: not any(d.queue_files(q) for q in ("incoming", "active", "deferred")), 15), \
        d.queue_snapshot()
