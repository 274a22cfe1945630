"""
Crash tests (invariants 1 and 2): kill -9 the whole daemon process group at bad moments,
restart it on the same spool, and check that no acknowledged message is lost and that an
unacknowledged one leaves nothing behind; while bounces are being generated, that every
failed recipient is still reported to the sender.  (A kill during a remote delivery is in
tests/integration/test_delivery.py.)
"""

import email
import email.policy
import os
import random
import smtplib
import threading
import time

from delivery_peers import Sink
from tsubame_harness import free_port, qid_of, token


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


# --------------------------------------------------------------------------
# Crash while bounces are being generated


class LogCounter:
    """Counts lines containing `needle` in a growing log file, reading only what is new."""

    def __init__(self, path, needle):
        self.path, self.needle = path, needle.encode()
        self.off, self.n, self.partial = 0, 0, b""

    def count(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                chunk = f.read()
        except OSError:
            return self.n
        self.off += len(chunk)
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        self.n += sum(1 for l in lines if self.needle in l)
        return self.n


def parse_bounce(raw):
    """(final recipients, statuses) of one DSN in the sender's Maildir; asserts its RFC 3464 shape."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", raw[:600]
    assert msg.get_param("report-type") == "delivery-status", raw[:600]
    parts = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.walk()]
    blocks = parts[0].get_payload()      # compat32: a list of header blocks
    assert len(blocks) >= 2, raw[:1500]
    rcpts, statuses = [], []
    for b in blocks[1:]:
        fields = {k.lower(): v.strip() for k, v in b.items()}
        assert fields.get("action") == "failed", fields
        assert fields.get("final-recipient", "").lower().startswith("rfc822;"), fields
        rcpts.append(fields["final-recipient"].split(";", 1)[1].strip().lower())
        statuses.append(fields.get("status", ""))
    return rcpts, statuses


def test_kill_during_bounces(make_daemon):
    """Invariant 2 for bounces.  A local account sends messages whose remote recipients get
    550 from a sink (a third recipient is accepted).  The messages are all queued while the
    sink is not there yet (connection refused: deferred), then the sink comes up and the next
    retry fails them all at once; the whole process group is SIGKILLed three times while those
    bounces are being written and delivered (kill points keyed on the count of
    'event=bounced' lines, one at once, the others after a random delay of up to 30 ms), and
    restarted on the same spool.  Then every failed recipient has an RFC 3464 bounce in the
    sender's Maildir at least once, every accepted recipient reached the sink at least once,
    nothing has more than one extra copy per crash, and the queue is empty with nothing in
    corrupt/."""
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    sink_ip = "127.0.0.31"
    sink_port = free_port(sink_ip)           # nothing listens there until the backlog is queued
    sink = None
    total = 90                               # messages; 2 failed recipients each
    nkills = 3
    try:
        d = make_daemon(params={
            "auth_plaintext": "yes",           # demo@ authenticates without TLS (loopback)
            "retry_interval": "1",
            "smtp_timeout": "5",
            "smtp_connect_timeout": "3",
            "deliver_processes": "2",
        }, start=False)
        d.write_table("relay", "127.0.0.1 true\n")
        d.write_table("hosts", "gone.test %s:%d\n" % (sink_ip, sink_port))   # no DNS
        d.start()
        bounced = LogCounter(os.path.join(d.logdir, "delivery.log"), "event=bounced ")
        refused = LogCounter(os.path.join(d.logdir, "delivery.log"), "event=deferred ")

        def rcpts_of(t):
            return ["perm1-%s@gone.test" % t, "ok-%s@gone.test" % t, "perm2-%s@gone.test" % t]

        acked = []                           # tokens whose 250 was received
        with d.smtp(timeout=30) as s:
            s.ehlo()
            s.login("demo@example.test", "demo-pass")
            for _ in range(total):
                t = token()
                s.sendmail("demo@example.test", rcpts_of(t),
                           "From: demo@example.test\r\nSubject: bounce me %s\r\n"
                           "Message-ID: <%s@example.test>\r\n\r\nbody %s\r\n" % (t, t, t))
                acked.append(t)
        # every message has been tried once and deferred (connection refused)
        assert wait_until(lambda: refused.count() >= 3 * total, 30), "seed %d: %d deferrals\n%s" % (
            seed, refused.count(), d.log("delivery")[-2000:])
        assert bounced.count() == 0
        sink = Sink(sink_ip, sink_port)

        # Kill points: so many new 'event=bounced' lines since the (re)start, small enough
        # that each kill finds work left (2 * total lines at least are still to come).
        steps = [rnd.randint(1, 20) for _ in range(nkills)]
        delays = [0.0] + [rnd.random() * 0.03 for _ in range(nkills - 1)]
        rnd.shuffle(delays)
        notes = []
        for step, delay in zip(steps, delays):
            k = bounced.count() + step
            deadline = time.monotonic() + 60
            while bounced.count() < k and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert bounced.count() >= k, "seed %d: only %d bounced lines, waiting for %d\nqueue %r\n%s" % (
                seed, bounced.count(), k, d.queue_snapshot(), d.tail())
            if delay:
                time.sleep(delay)
            n = bounced.count()
            d.kill9()
            queued = sum(len(d.queue_files(f)) for f in ("active", "deferred"))
            notes.append("killed at %d bounced lines (+%.0f ms): %d bounce files, %d queued" % (
                n, delay * 1000, len(d.message_files("demo@example.test")), queued))
            assert queued, "seed %d: the kill came after the work: %s" % (seed, notes)
            d.start()
        print("seed %d: %s" % (seed, "; ".join(notes)))

        failed = {a.lower() for t in acked for a in rcpts_of(t) if a.startswith("perm")}

        def bounce_counts():
            counts = {}
            for raw in d.messages("demo@example.test"):
                rcpts, statuses = parse_bounce(raw)
                for r, st in zip(rcpts, statuses):
                    assert st.startswith("5.1.1"), (r, st)
                    counts[r] = counts.get(r, 0) + 1
            return counts

        def delivered_counts():
            counts = {}
            for m in list(sink.messages):
                for r in m["rcpts"]:
                    a = r.split(">")[0].split("<")[-1].lower()
                    counts[a] = counts.get(a, 0) + 1
            return counts

        def all_done():
            bc, dc = bounce_counts(), delivered_counts()
            return all(a in bc for a in failed) and all(("ok-%s@gone.test" % t) in dc for t in acked)

        wait_until(all_done, 60, step=0.2)
        bc, dc = bounce_counts(), delivered_counts()
        lost_bounces = sorted(a for a in failed if a not in bc)
        lost_ok = sorted(t for t in acked if ("ok-%s@gone.test" % t) not in dc)
        assert not lost_bounces, "seed %d: %d failed recipient(s) without a bounce: %r\nqueue %r\n%s" % (
            seed, len(lost_bounces), lost_bounces[:5], d.queue_snapshot(), d.tail())
        assert not lost_ok, "seed %d: %d accepted recipient(s) never delivered: %r" % (seed, len(lost_ok), lost_ok[:5])
        assert set(bc) == failed, "seed %d: bounces for recipients that did not fail: %r" % (
            seed, sorted(set(bc) - failed)[:5])
        # Each crash may repeat a round that was not yet marked (a duplicate, never a loss).
        too_many = [(a, n) for a, n in list(bc.items()) + list(dc.items()) if n > 1 + nkills]
        assert not too_many, "seed %d: more copies than crashes allow: %r" % (seed, too_many[:5])
        # Every file in the sender's Maildir is one of these bounces (parse_bounce checked each),
        # from the null sender; no bounce went out to the sink.
        for raw in d.messages("demo@example.test"):
            assert raw.startswith(b"Return-Path: <>\n"), raw[:200]
        assert not [c for c in sink.commands("MAIL") if "<>" in c], "a bounce went to the sink"
        assert_no_corrupt(d)
        assert wait_until(lambda: not any(d.queue_files(q) for q in ("incoming", "active", "deferred")), 15), \
            d.queue_snapshot()
        print("seed %d: %d bounced recipients, %d duplicate reports, %d accepted, %d duplicate deliveries" % (
            seed, len(bc), sum(n - 1 for n in bc.values()), len(dc), sum(n - 1 for n in dc.values())))
    finally:
        if sink:
            sink.stop()
