#!/usr/bin/env python3
"""
bench/measure.py: the measurements of `make bench`, the same for both systems.

bench/run.sh starts Tsubame, Postfix and one smtp-sink for each, and calls
    measure.py --tsubame pid=PID,port=N,maildir=DIR,log=DIR
               --tsubame-sink pid=PID,port=N,count=FILE
               --postfix pidfile=FILE,port=N,maildir=DIR,log=FILE
               --postfix-sink pid=PID,port=N,count=FILE
A system is a master process and its descendants (found through /proc), a loopback SMTP
port, the Maildir where demo@example.test's mail lands, and a sink (smtp-sink -c on
127.0.0.9, its running counters in FILE) where it relays mail for sink@relay.test.  Phases
alternate between the systems, so that drift of the machine (or other jobs on it) touches
both alike:
  mem      N idle sessions (220 + EHLO answered) opened on the fresh system; increase of
           the summed PSS (/proc/PID/smaps_rollup) of all its processes, divided by N (KB)
  warm-up  a few messages, so that the Maildirs exist and the workers have started
  then BENCH_ROUNDS rounds of:
  tp10     smtp-source -d -s 10 -m M10 -l 4096; time from starting it (first connection)
           until the Maildir holds every message (msg/s); CPU = utime+stime of the live
           processes + the master's cutime+cstime (reaped children), before/after (s/1000 msg)
  tp100    the same with 100 sessions
  relay10  smtp-source -d -s 10 -m R10 -l 4096 -t sink@relay.test: relayed to the sink;
           time from starting it until the sink has counted every message (msg/s)
  relay100 the same with 100 sessions
  latency  10 threads, one session each: send the message, then ".\r\n" in its own write,
           time until the 250 arrives (ms); samples pooled over the rounds
After each phase the Maildir (or the sink) must hold exactly the messages acknowledged (none
lost, none twice); then the Maildir is emptied (the sink's count is taken as the new base),
so every round starts alike.  Every wait is bounded.  A failed relay phase stops the relay
phases of that system only.
Output ends with one line per figure (medians over the rounds):
    bench NAME tsubame=VALUE postfix=VALUE ratio=VALUE unit=UNIT
"""

import argparse
import ctypes
import glob
import os
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

SMTP_SOURCE = "/usr/sbin/smtp-source"
SENDER = "bench@sender.test"
RCPT = "demo@example.test"
RELAY_RCPT = "sink@relay.test"
MSG_SIZE = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")

M10 = int(os.environ.get("BENCH_MSGS_10", "6000"))
M100 = int(os.environ.get("BENCH_MSGS_100", "10000"))
R10 = int(os.environ.get("BENCH_RELAY_MSGS_10", "10000"))
R100 = int(os.environ.get("BENCH_RELAY_MSGS_100", "10000"))
RELAY_SETTLE = 1.0      # s after the last arrival: late duplicates would show by then
LAT_MSGS = int(os.environ.get("BENCH_LAT_MSGS", "1000"))
LAT_SESSIONS = 10
IDLE = int(os.environ.get("BENCH_IDLE", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PHASE_TIMEOUT = float(os.environ.get("BENCH_PHASE_TIMEOUT", "180"))


def info(msg):
    print("bench: " + msg, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# /proc

def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in clock ticks, or None when gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()      # rest[0] is field 3 (state); utime is field 14
    if rest[0] == "Z":
        return None
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def pss_kb(pid):
    """Proportional set size from smaps_rollup, falling back to RSS."""
    for path, key in (("/proc/%d/smaps_rollup" % pid, "Pss:"), ("/proc/%d/status" % pid, "VmRSS:")):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


def listening(port):
    want = ":%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------
# counting arrivals in Maildir/new without listing it over and over

IN_MOVED_TO, IN_CREATE, IN_Q_OVERFLOW, IN_ISDIR = 0x80, 0x100, 0x4000, 0x40000000


class NewWatch:
    """inotify on Maildir/new: each file created or renamed into it counts as one arrival.
    The count is only a cue: the caller confirms with a real listing.  Falls back to
    listing every 20 ms when inotify is not available."""

    def __init__(self, newdir):
        self.fd = -1
        self.events = 0
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, newdir.encode(), IN_MOVED_TO | IN_CREATE) >= 0:
                self.fd = fd
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            self.fd = -1

    def wait(self, timeout):
        """Wait up to `timeout` s for events; returns False when the count is unreliable."""
        if self.fd < 0:
            time.sleep(0.02)
            return False
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return True
        off = 0
        while off + 16 <= len(data):
            _wd, mask, _cookie, nlen = struct.unpack_from("iIII", data, off)
            off += 16 + nlen
            if mask & IN_Q_OVERFLOW:
                return False
            if not mask & IN_ISDIR:
                self.events += 1
        return True

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---------------------------------------------------------------------------------------
# the sink a system relays to

SINK_RECORD = re.compile(rb"mesg=(\d+)$")


class Sink:
    """A Postfix smtp-sink -c started by run.sh: it appends "sess=N quit=N mesg=N\\r" to a
    file whenever a session ends, a QUIT arrives or a final "." is received; mesg counts
    the messages whose final "." it has read.  Only a record followed by its "\\r" is
    complete (the sink may be writing the next one)."""

    def __init__(self, name, spec):
        self.name = name
        kv = dict(item.split("=", 1) for item in spec.split(","))
        self.pid = int(kv["pid"])
        self.port = int(kv["port"])
        self.path = kv["count"]
        self.base = 0           # the count when the current phase started

    def count(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 512))
                data = f.read()
        except OSError:
            return 0
        for rec in reversed(data.split(b"\r")[:-1]):
            m = SINK_RECORD.search(rec)
            if m:
                return int(m.group(1))
        return 0

    def alive(self):
        return proc_stat(self.pid) is not None

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not listening(self.port):
            if not self.alive():
                raise BenchError("%s: smtp-sink %d is not running" % (self.name, self.pid))
            if time.monotonic() > deadline:
                raise BenchError("%s: not listening on port %d after %.0f s" % (self.name, self.port, timeout))
            time.sleep(0.05)
        self.base = self.count()

    def wait_count(self, want, deadline, sysm, what):
        """Until the sink has counted `want` messages since self.base; returns the time it
        first did.  Polls every 10 ms (one small read of the file's tail)."""
        n = 0
        while True:
            if self.count() - self.base >= want:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise BenchError("%s: %s: the sink counted %d of %d messages after %.0f s"
                                 % (sysm.name, what, self.count() - self.base, want, PHASE_TIMEOUT))
            n += 1
            if n % 50 == 0:
                sysm.check_alive(what)
                if not self.alive():
                    raise BenchError("%s: %s: smtp-sink %d died" % (sysm.name, what, self.pid))
            time.sleep(0.01)


# ---------------------------------------------------------------------------------------
# a system under test

class System:
    def __init__(self, name, spec):
        self.name = name
        kv = dict(item.split("=", 1) for item in spec.split(","))
        self.port = int(kv["port"])
        self.maildir = kv["maildir"]
        self.log = kv.get("log", "")
        self.pidfile = kv.get("pidfile")
        self.master = int(kv["pid"]) if "pid" in kv else None
        self.acked = 0          # messages acknowledged with 250 (or sent by smtp-source)
        self.seen = 0           # messages found in the Maildir (and then removed)
        self.results = {}       # figure -> list of values, one per round
        self.lat = []           # latency samples (s), pooled over the rounds
        self.start_children = set()
        self.sink = None        # where mail for relay.test goes (a Sink)
        self.relayed = 0        # messages the sink has counted in all
        self.relay_broken = None    # why the relay phases stopped

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.master is None and self.pidfile:
                try:
                    with open(self.pidfile) as f:
                        self.master = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
            if self.master is not None and proc_stat(self.master) is None:
                raise BenchError("%s: master process %d is not running" % (self.name, self.master))
            if self.master is not None and listening(self.port):
                break
            if time.monotonic() > deadline:
                raise BenchError("%s: not listening on 127.0.0.1:%d after %.0f s" % (self.name, self.port, timeout))
            time.sleep(0.05)
        time.sleep(1.0)         # let the master finish starting its children

    def alive(self):
        return self.master is not None and proc_stat(self.master) is not None

    def check_alive(self, what):
        if not self.alive():
            raise BenchError("%s: master process %d died during %s" % (self.name, self.master, what))

    def procs(self):
        """The master and all its descendants."""
        kids = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = proc_stat(int(name))
                if st:
                    kids.setdefault(st[0], []).append(int(name))
        out, todo = [], [self.master]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return [p for p in out if proc_stat(p)]

    def cpu_seconds(self):
        ticks = 0
        for pid in self.procs():
            st = proc_stat(pid)
            if st:
                ticks += st[1]
                if pid == self.master:
                    ticks += st[2]       # children it has reaped
        return ticks / CLK_TCK

    def pss_total(self):
        procs = self.procs()
        return sum(pss_kb(p) for p in procs), len(procs)

    def files(self):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            try:
                out += [os.path.join(d, e.name) for e in os.scandir(d) if e.is_file()]
            except FileNotFoundError:
                pass
        return out

    def delivered(self):
        return len(self.files())

    def wait_delivered(self, want, deadline, what):
        """Until the Maildir holds `want` messages; returns the time it first did."""
        watch = NewWatch(os.path.join(self.maildir, "new"))
        watch.events = self.delivered()     # those already there (a race only over-counts)
        try:
            reliable = True
            while True:
                if (not reliable or watch.events >= want) and self.delivered() >= want:
                    return time.monotonic()
                if watch.fd >= 0 and reliable and watch.events >= want:
                    reliable = False        # events counted something else: list from now on
                if time.monotonic() > deadline:
                    raise BenchError("%s: %s: %d of %d messages in the Maildir after %.0f s"
                                     % (self.name, what, self.delivered(), want, PHASE_TIMEOUT))
                self.check_alive(what)
                reliable = watch.wait(0.05) and reliable
        finally:
            watch.close()

    def settle_and_empty(self, what):
        """Check that the Maildir holds exactly what was acknowledged, then empty it."""
        time.sleep(0.3)
        files = self.files()
        expect = self.acked - self.seen
        if len(files) != expect:
            info("%s: WARNING: %s: %d messages acknowledged, %d in the Maildir"
                 % (self.name, what, expect, len(files)))
        self.seen += len(files)
        self.acked = self.seen          # report each discrepancy once
        for f in files:
            os.unlink(f)

    def problems(self):
        """Warning/error lines of the system's own logs."""
        if self.name == "tsubame":
            files = sorted(glob.glob(os.path.join(self.log, "*", "*.log")))
            pat = re.compile(r"\]: (warning|fatal|panic|error) ")
        else:
            files = [self.log]
            pat = re.compile(r": (warning|fatal|panic|error): ")
        lines = []
        for fn in files:
            try:
                with open(fn, errors="replace") as f:
                    lines += [l.rstrip("\n") for l in f if pat.search(l)]
            except OSError:
                pass
        return lines


# ---------------------------------------------------------------------------------------
# SMTP by hand

class Conn:
    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # Without this, Nagle holds the final ".\r\n" until the previous segment is
        # acknowledged, and the server's delayed ACK adds ~40 ms to every measurement.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        """Read one (possibly multi-line) reply; returns (code, last line)."""
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise BenchError("connection closed by the server (unread %r)" % self.buf[:100])
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), line.decode("ascii", "replace")

    def cmd(self, text, want):
        self.sock.sendall(text.encode() + b"\r\n")
        code, line = self.reply()
        if code != want:
            raise BenchError("%s -> %s" % (text, line))
        return line

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def message_body(tag):
    """A 4 KB message: a few headers, then 80-byte lines (none starts with '.')."""
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: bench %s\r\nMessage-Id: <%s@bench.test>\r\n\r\n"
            % (SENDER, RCPT, tag, tag)).encode()
    n = 0
    while len(body) < MSG_SIZE - 80:
        body += b"%d" % (n % 10) + b"X" * 77 + b"\r\n"
        n += 1
    return body


# ---------------------------------------------------------------------------------------
# the phases

def phase_memory(sysm, n):
    time.sleep(0.5)
    before, nprocs0 = sysm.pss_total()
    conns, failures = [], 0
    deadline = time.monotonic() + 60
    for i in range(n):
        if time.monotonic() > deadline:
            break
        try:
            c = Conn(sysm.port, timeout=15.0)
            conns.append(c)
            code, line = c.reply()
            if code != 220:
                raise BenchError("greeting %s" % line)
            c.cmd("EHLO idle%d.bench.test" % i, 250)
        except (OSError, BenchError) as e:
            failures += 1
            if conns and conns[-1] is c:
                conns.pop().close()
            if failures == 1:
                info("%s: idle session %d failed: %s" % (sysm.name, i, e))
    time.sleep(1.0)
    after, nprocs1 = sysm.pss_total()
    held = len(conns)
    for c in conns:
        try:
            c.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        c.close()
    sysm.check_alive("the idle sessions")
    if held == 0:
        raise BenchError("%s: no idle session could be opened" % sysm.name)
    per = (after - before) / held
    info("%s: %d idle sessions: PSS %d -> %d KB, processes %d -> %d: %.1f KB/session%s"
         % (sysm.name, held, before, after, nprocs0, nprocs1, per,
            "" if held == n else " (%d failed)" % (n - held)))
    sysm.results.setdefault("mem_per_idle_session", []).append(per)


def smtp_source(sysm, sessions, count, rcpt, label, arrived):
    """Run smtp-source -d (count messages of MSG_SIZE to rcpt over `sessions` sessions) and
    arrived(deadline), which waits until they have all arrived and returns when they had.
    Returns (start, all arrived, smtp-source exited, i.e. every message had its 250)."""
    argv = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(count), "-l", str(MSG_SIZE),
            "-f", SENDER, "-t", rcpt, "127.0.0.1:%d" % sysm.port]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    accepted = []               # when smtp-source exits: every message has had its 250
    waiter = threading.Thread(target=lambda: (p.wait(), accepted.append(time.monotonic())), daemon=True)
    waiter.start()
    try:
        t1 = arrived(t0 + PHASE_TIMEOUT)
        try:
            p.wait(timeout=max(1.0, t0 + PHASE_TIMEOUT - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise BenchError("%s: %s: smtp-source still running after every message was delivered"
                             % (sysm.name, label))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        out = p.stdout.read().decode("utf-8", "replace").strip()
        p.stdout.close()
    if p.returncode != 0:
        raise BenchError("%s: %s: smtp-source exited %d: %s" % (sysm.name, label, p.returncode, out[-500:]))
    if out:
        info("%s: %s: smtp-source said: %s" % (sysm.name, label, out[-300:]))
    waiter.join(5)
    return t0, t1, accepted[0] if accepted else t1


def run_source(sysm, sessions, count, label, measure_cpu=False):
    """smtp-source into the (empty) Maildir; returns (msg/s delivered, CPU seconds)."""
    cpu0 = sysm.cpu_seconds() if measure_cpu else 0.0
    t0, t1, t_acc = smtp_source(sysm, sessions, count, RCPT, label,
                                lambda deadline: sysm.wait_delivered(count, deadline, label))
    sysm.acked += count
    if measure_cpu:
        time.sleep(0.5)         # let the last removals from the queue finish
    cpu = sysm.cpu_seconds() - cpu0 if measure_cpu else 0.0
    rate = count / (t1 - t0)
    info("%s: %s: %d messages, %d sessions: accepted in %.2f s (%.1f msg/s), in the Maildir in %.2f s: %.1f msg/s%s"
         % (sysm.name, label, count, sessions, t_acc - t0, count / (t_acc - t0), t1 - t0, rate,
            ", CPU %.2f s" % cpu if measure_cpu else ""))
    sysm.settle_and_empty(label)
    return rate, cpu


def run_relay(sysm, sessions, count, label):
    """smtp-source to sink@relay.test, which the system relays to its sink; returns msg/s
    from the start until the sink has counted them all.  Then, after RELAY_SETTLE, the sink
    must have counted exactly the messages acknowledged."""
    sink = sysm.sink
    now = sink.count()
    if now != sink.base:
        info("%s: WARNING: %s: %d messages reached the sink after the previous phase was checked"
             % (sysm.name, label, now - sink.base))
        sysm.relayed += now - sink.base
        sink.base = now
    cpu0 = sysm.cpu_seconds()
    t0, t1, t_acc = smtp_source(sysm, sessions, count, RELAY_RCPT, label,
                                lambda deadline: sink.wait_count(count, deadline, sysm, label))
    time.sleep(RELAY_SETTLE)
    cpu = sysm.cpu_seconds() - cpu0
    got = sink.count() - sink.base
    sysm.relayed += got
    rate = count / (t1 - t0)
    info("%s: %s: %d messages, %d sessions: accepted in %.2f s (%.1f msg/s), at the sink in %.2f s: %.1f msg/s, CPU %.2f s"
         % (sysm.name, label, count, sessions, t_acc - t0, count / (t_acc - t0), t1 - t0, rate, cpu))
    if got != count:
        info("%s: WARNING: %s: %d messages acknowledged, %d counted by the sink" % (sysm.name, label, count, got))
    sink.base += got
    return rate


def relay_or_stop(sysm, sessions, count, label):
    """run_relay; None when the system has no sink or its relaying failed (then no more
    relay phases run for it, the others go on)."""
    if not sysm.sink or sysm.relay_broken:
        return None
    try:
        return run_relay(sysm, sessions, count, label)
    except BenchError as e:
        sysm.check_alive(label)         # a dead system is a failure of every phase
        info("FAILED: %s (no more relay phases for %s)" % (e, sysm.name))
        sysm.relay_broken = str(e)
        return None


def phase_warmup(sysm):
    run_source(sysm, 2, 20, "warm-up")
    relay_or_stop(sysm, 2, 20, "relay warm-up")


def phase_relay(sysm, sessions, count, name):
    rate = relay_or_stop(sysm, sessions, count, name)
    if rate is not None:
        sysm.results.setdefault(name, []).append(rate)


def phase_throughput(sysm, sessions, count, name, measure_cpu=False):
    rate, cpu = run_source(sysm, sessions, count, name, measure_cpu)
    sysm.results.setdefault(name, []).append(rate)
    if measure_cpu:
        sysm.results.setdefault("cpu_per_1000", []).append(cpu * 1000.0 / count)


def percentile(sorted_samples, q):
    """Nearest-rank percentile of an ascending list."""
    k = max(1, -(-q * len(sorted_samples) // 100))
    return sorted_samples[min(len(sorted_samples), k) - 1]


def phase_latency(sysm, total, sessions):
    per = total // sessions
    samples, errors = [], []
    lock = threading.Lock()

    def worker(k):
        mine = []
        try:
            c = Conn(sysm.port, timeout=30.0)
            c.reply()
            c.cmd("EHLO lat%d.bench.test" % k, 250)
            for i in range(per):
                c.cmd("MAIL FROM:<%s>" % SENDER, 250)
                c.cmd("RCPT TO:<%s>" % RCPT, 250)
                c.cmd("DATA", 354)
                c.sock.sendall(message_body("lat-%d-%d" % (k, i)))
                c.sock.sendall(b".\r\n")
                t = time.perf_counter()         # the final "." is on its way
                code, line = c.reply()
                dt = time.perf_counter() - t
                if code != 250:
                    raise BenchError("end of data -> %s" % line)
                mine.append(dt)
            c.cmd("QUIT", 221)
            c.close()
        except (OSError, BenchError) as e:
            with lock:
                errors.append("session %d: %s" % (k, e))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(sessions)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + PHASE_TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    sysm.acked += len(samples)
    if any(t.is_alive() for t in threads):
        raise BenchError("%s: latency clients still running after %.0f s" % (sysm.name, PHASE_TIMEOUT))
    if errors:
        raise BenchError("%s: latency run: %s" % (sysm.name, "; ".join(errors[:3])))
    sysm.wait_delivered(len(samples), time.monotonic() + PHASE_TIMEOUT, "latency")
    sysm.settle_and_empty("latency")
    sysm.lat.extend(samples)
    samples.sort()
    info("%s: latency: %d messages in %d sessions: median %.3f ms, p99 %.3f ms, max %.3f ms"
         % (sysm.name, len(samples), sessions, statistics.median(samples) * 1000.0,
            percentile(samples, 99) * 1000.0, samples[-1] * 1000.0))


# ---------------------------------------------------------------------------------------

FIGURES = [
    ("throughput_10", "msg/s", "%.1f"),
    ("throughput_100", "msg/s", "%.1f"),
    ("latency_p50", "ms", "%.3f"),
    ("latency_p99", "ms", "%.3f"),
    ("cpu_per_1000", "s", "%.3f"),
    ("mem_per_idle_session", "KB", "%.1f"),
    ("relay_10", "msg/s", "%.1f"),
    ("relay_100", "msg/s", "%.1f"),
]


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "NA"
    r = a / b
    return "%.2f" % r if r >= 0.1 else "%.3g" % r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsubame", required=True)
    ap.add_argument("--postfix", required=True)
    ap.add_argument("--tsubame-sink", help="pid=PID,port=N,count=FILE of Tsubame's smtp-sink")
    ap.add_argument("--postfix-sink", help="pid=PID,port=N,count=FILE of Postfix's smtp-sink")
    ap.add_argument("--figures", help="write the bench lines to this file instead of stdout")
    args = ap.parse_args()
    systems = [System("tsubame", args.tsubame), System("postfix", args.postfix)]
    for s, spec in zip(systems, (args.tsubame_sink, args.postfix_sink)):
        if spec:
            s.sink = Sink(s.name + " sink", spec)
            try:
                s.sink.wait_ready()
            except BenchError as e:     # the other figures can still be measured
                info("FAILED: %s (no relay phases for %s; see %s.log)"
                     % (e, s.name, s.sink.path.rsplit(".", 1)[0]))
                s.relay_broken = str(e)
    for s in systems:
        s.wait_ready()
    tsub = systems[0]
    tsub.start_children = set(tsub.procs()) - {tsub.master}
    info("tsubame on 127.0.0.1:%d (master %d), postfix on 127.0.0.1:%d (master %d); load average %s"
         % (systems[0].port, systems[0].master, systems[1].port, systems[1].master, loadavg()))

    failed = []

    def each(fn, *a, **kw):
        for s in systems:
            if s.name in failed:
                continue
            try:
                fn(s, *a, **kw)
            except BenchError as e:
                info("FAILED: %s" % e)
                failed.append(s.name)

    t_start = time.monotonic()
    each(phase_memory, IDLE)                  # first, while no worker process exists yet
    each(phase_warmup)
    for r in range(ROUNDS):
        info("round %d of %d" % (r + 1, ROUNDS))
        each(phase_throughput, 10, M10, "throughput_10", measure_cpu=True)
        each(phase_throughput, 100, M100, "throughput_100")
        each(phase_relay, 10, R10, "relay_10")
        each(phase_relay, 100, R100, "relay_100")
        each(phase_latency, LAT_MSGS, LAT_SESSIONS)
    for s in systems:
        if s.lat:
            s.lat.sort()
            s.results["latency_p50"] = [statistics.median(s.lat) * 1000.0]
            s.results["latency_p99"] = [percentile(s.lat, 99) * 1000.0]

    for s in systems:
        if not s.alive():
            info("%s: WARNING: master process %d is gone" % (s.name, s.master))
        elif s is tsub:
            now = set(s.procs()) - {s.master}
            if not s.start_children <= now:
                info("tsubame: WARNING: child processes were replaced during the run (%s -> %s)"
                     % (sorted(s.start_children), sorted(now)))
        probs = s.problems()
        info("%s: %d messages delivered in all, %d warning/error log lines%s"
             % (s.name, s.seen, len(probs), ", e.g.:" if probs else ""))
        for l in probs[:5]:
            info("   " + l)
        if s.sink:
            info("%s: %d messages relayed to the sink in all%s"
                 % (s.name, s.relayed, "; relaying FAILED: " + s.relay_broken if s.relay_broken else ""))
    info("measured in %.0f s; load average %s; figures are medians over %d rounds "
         "(latency: percentiles of the pooled samples)" % (time.monotonic() - t_start, loadavg(), ROUNDS))

    lines = []
    for name, unit, f in FIGURES:
        t, p = (statistics.median(s.results[name]) if s.results.get(name) else None for s in systems)
        lines.append("bench %s tsubame=%s postfix=%s ratio=%s unit=%s\n" % (
            name, f % t if t is not None else "NA", f % p if p is not None else "NA", fmt_ratio(t, p), unit))
    if args.figures:
        with open(args.figures, "w") as out:
            out.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    return 1 if failed or any(s.relay_broken for s in systems) else 0


if __name__ == "__main__":
    # SIGTERM from run.sh's trap: unwind, so that the finally clauses kill smtp-source.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except BenchError as e:
        info("FAILED: %s" % e)
        sys.exit(1)
