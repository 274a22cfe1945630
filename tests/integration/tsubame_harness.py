"""
tsubame_harness: start real tsubamed processes for the integration and crash tests.

A Daemon owns one test site: a config folder (tsubame.conf + domains/accounts/aliases
tables), a work_dir and a Maildir root, all under one base folder that the
unprivileged `user` can traverse (tests run as root on CI, and the daemon's
children drop to that user).  Every wait here is bounded: a daemon that hangs
fails the test, it never hangs the suite.

The binaries come from $TSUBAME_BIN (default: build/asan/bin in the repository).
On teardown the daemon gets SIGTERM, then SIGKILL for its whole process group if
it has not stopped in time, and its stderr and logs are searched for sanitizer
reports ("AddressSanitizer", "LeakSanitizer", "runtime error:").
"""

import os
import pwd
import random
import re
import resource
import base64
import hashlib
import hmac
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TSUBAME_BIN") or os.path.join(REPO, "build", "asan", "bin")
TSUBAMED = os.path.join(BIN, "tsubamed")
TSUBAMECTL = os.path.join(BIN, "tsubamectl")

HOSTNAME = "tsubame.test"
RUN_USER = "tsubame"
IS_ROOT = os.geteuid() == 0

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

# Sanitizer settings for every process we start (the daemon and tsubamectl).
SAN_ENV = {
    "ASAN_OPTIONS": os.environ.get("TSUBAME_ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1:allocator_may_return_null=0"),
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

DEFAULT_DOMAINS = (
    "example.test\n"
    "other.test aliases=mail.other.test max_accounts=0 mailbox_limit=0 max_messages=0 max_message_size=0\n"
)

# (address, password, extra tsubamectl args)
DEFAULT_ACCOUNTS = [
    ("demo@example.test", "demo-pass", []),
    ("bob@example.test", "bob-pass", []),
    ("carol@other.test", "carol-pass", []),
]

DEFAULT_ALIASES = (
    "# test aliases\n"
    "info@example.test demo@example.test\n"
    "samedom@example.test bob@example.test\n"
    "keep@example.test carol@other.test,0\n"
    "sales@example.test carol@other.test\n"
    "rw@example.test bob@example.test,1\n"
    "fw-*@example.test *@other.test\n"
    "ext@example.test someone@remote.invalid\n"
    "*@other.test carol@other.test\n"
)


def raise_nofile():
    """Raise our soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    want = min(want, 1 << 20)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


raise_nofile()


def binaries_present():
    return os.access(TSUBAMED, os.X_OK) and os.access(TSUBAMECTL, os.X_OK)


def ensure_user():
    """Create the unprivileged run user when we are root and it does not exist."""
    if not IS_ROOT:
        return None
    try:
        return pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_USER],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        return pwd.getpwnam(RUN_USER)


def chown_run_user(path):
    if IS_ROOT:
        pw = pwd.getpwnam(RUN_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def make_base_dir():
    base = tempfile.mkdtemp(prefix="tsubame-tests-", dir="/tmp")
    os.chmod(base, 0o755)
    return base


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_lines(read, pattern, timeout=15.0, n=1, what="the log", context=None):
    """The lines of read() that match pattern, once there are n of them (bounded by timeout);
    otherwise an AssertionError showing the end of the text (and context(), if given)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        hits = [l for l in read().splitlines() if rx.search(l)]
        if len(hits) >= n or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    assert len(hits) >= n, "%d line(s) matching %r in %s after %.0fs, expected %d\n%s%s" % (
        len(hits), pattern, what, timeout, n, read()[-3000:], context() if context else "")
    return hits


def wait_log(d, pattern, name="main", timeout=15.0, n=1):
    """wait_lines on one of the daemon's logs (main, delivery, receive, ...)."""
    return wait_lines(lambda: d.log(name), pattern, timeout, n, "%s.log" % name,
                      None if name == "main" else lambda: "\n--- main ---\n" + d.log()[-3000:])


def token():
    return "tok" + uuid.uuid4().hex[:16]


def live_group_members(pgid):
    """Pids (not zombies) whose process group is pgid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...  comm may contain spaces/parens
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) >= 3 and rest[0] != "Z" and int(rest[2]) == pgid:
            out.append(int(name))
    return out


# --------------------------------------------------------------------------
# SMTP reply parsing over a raw socket


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines          # texts after "CCC-" / "CCC "

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def first(self):
        return self.lines[0] if self.lines else ""

    def enh(self):
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})\b", self.first)
        return m.group(1) if m else None

    def startswith(self, s):
        """'250 2.0.0 Ok' style match against code + first line."""
        return ("%d %s" % (self.code, self.first)).startswith(s)

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class SessionClosed(Exception):
    pass


def client_tls_context(minimum=None, maximum=None):
    """A TLS client context that accepts the test's self-signed certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def b64(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return base64.b64encode(s).decode("ascii")


class Session:
    """A raw SMTP client: send exact bytes, read replies one at a time.

    source: local address to bind before connecting (the client IP the daemon sees, 127.0.0.x);
    tls: speak TLS from the first byte (implicit-TLS listeners)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, read_greeting=True, source=None, tls=False):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.eof = False
        self.greeting = self.reply() if read_greeting else None

    def starttls(self, ctx=None):
        """STARTTLS (expects 220 2.0.0) and the handshake; unread plaintext is an error."""
        r = self.cmd("STARTTLS")
        assert r.startswith("220 2.0.0"), "STARTTLS -> %r" % r
        assert not self.buf, "plaintext after the STARTTLS reply: %r" % self.buf
        self.sock = (ctx or client_tls_context()).wrap_socket(self.sock)
        return r

    @property
    def tls_version(self):
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    def auth_plain(self, user, password):
        """AUTH PLAIN with an initial response; returns the reply."""
        return self.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password)))

    def auth_login(self, user, password):
        r = self.cmd("AUTH LOGIN")
        if r.code != 334:
            return r
        r = self.cmd(b64(user))
        if r.code != 334:
            return r
        return self.cmd(b64(password))

    def auth_cram(self, user, secret):
        r = self.cmd("AUTH CRAM-MD5")
        if r.code != 334:
            return r
        challenge = base64.b64decode(r.first)
        digest = hmac.new(secret.encode("utf-8"), challenge, hashlib.md5).hexdigest()
        return self.cmd(b64("%s %s" % (user, digest)))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            raise SessionClosed("connection closed by server; unread=%r" % self.buf[:200])
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete reply within %.1fs; have %r" % (self.timeout, self.buf[:300]))
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise socket.timeout("no complete reply within %.1fs; have %r" % (self.timeout, self.buf[:300]))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            if not self.buf:
                raise SessionClosed("connection closed by server")
        self.buf += chunk

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if self.eof:
                raise SessionClosed("connection closed mid-line: %r" % self.buf[:200])
            self._fill(deadline)

    def reply(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        lines = []
        code = None
        while True:
            raw = self._line(deadline)
            s = raw.decode("utf-8", "replace")
            m = re.match(r"^(\d{3})([ -])(.*)$", s)
            if not m and re.match(r"^\d{3}$", s):
                m = re.match(r"^(\d{3})()(.*)$", s)
            assert m, "malformed reply line %r" % raw
            if code is None:
                code = int(m.group(1))
            else:
                assert int(m.group(1)) == code, "code changed inside a multi-line reply: %r" % raw
            lines.append(m.group(3))
            if m.group(2) != "-":
                return Reply(code, lines)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def expect(self, line, prefix, timeout=None):
        r = self.cmd(line, timeout)
        assert r.startswith(prefix), "%r -> %r, expected %r" % (line, r, prefix)
        return r

    def ehlo(self, name="client.example"):
        return self.expect("EHLO " + name, "250")

    def pending(self, wait=0.3):
        """Whatever bytes arrive within `wait` seconds (for 'no extra reply' checks)."""
        deadline = time.monotonic() + wait
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                break
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        return self.buf

    def wait_closed(self, timeout=5.0):
        """True when the server closes the connection within timeout (unread data is kept)."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pending(min(0.2, max(0.01, deadline - time.monotonic())))
        return self.eof

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def qid_of(reply):
    m = re.search(r"queued as (\S+)", reply.text)
    return m.group(1) if m else None


# --------------------------------------------------------------------------
# delivered Maildir files


def split_delivered(content):
    """(return_path, delivered_to, received_header_unfolded, rest) of a delivered file (bytes)."""
    lines = content.split(b"\n")
    assert lines[0].startswith(b"Return-Path: "), "first line is not Return-Path: %r" % lines[0][:200]
    assert lines[1].startswith(b"Delivered-To: "), "second line is not Delivered-To: %r" % lines[1][:200]
    assert lines[2].startswith(b"Received: "), "third line is not Received: %r" % lines[2][:200]
    i = 3
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    received = b" ".join(l.strip() for l in lines[2:i])
    rp = lines[0][len(b"Return-Path: "):].strip()
    dt = lines[1][len(b"Delivered-To: "):].strip()
    return rp, dt, received, b"\n".join(lines[i:])


def strip_brackets(b):
    if b.startswith(b"<") and b.endswith(b">"):
        return b[1:-1]
    return b


def make_cert(folder, cn=HOSTNAME):
    """A self-signed RSA certificate and key made now (openssl req -x509): (cert, key) paths."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        os.makedirs(folder, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=" + cn, "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % cn,
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o644)
    return cert, key


# --------------------------------------------------------------------------
# the daemon


class Daemon:
    def __init__(self, base, name="site", params=None, domains=DEFAULT_DOMAINS, accounts=DEFAULT_ACCOUNTS,
                 aliases=DEFAULT_ALIASES, port=None, host="127.0.0.1"):
        self.name = name
        self.host = host          # the listen address (several sites may run on 127.0.0.x)
        self.root = os.path.join(base, "%s-%s" % (name, uuid.uuid4().hex[:6]))
        os.makedirs(self.root)
        os.chmod(self.root, 0o755)
        self.etc = os.path.join(self.root, "etc")
        self.work = os.path.join(self.root, "work")
        self.mail = os.path.join(self.root, "mail")
        for d in (self.etc, self.work, self.mail):
            os.makedirs(d)
            os.chmod(d, 0o755)
        chown_run_user(self.work)
        chown_run_user(self.mail)
        self.conf = os.path.join(self.etc, "tsubame.conf")
        self.port = port or free_port(host)
        self.params = {
            "hostname": HOSTNAME,
            "node_id": "n1",
            "work_dir": self.work,
            "user": RUN_USER,
            "listen": "%s:%d" % (host, self.port),
            "max_message_size": "200000",
            "max_recipients": "5",
            "mailbox_path": self.mail + "/%DOMAIN%/%USERNAME%/Maildir",
            "shutdown_timeout": "3",
            "deliver_processes": "2",
            # Remote deliveries must never leave loopback: a DNS server that is not there
            # (a closed port) makes every lookup fail at once; tests that route mail
            # point dns_servers at their own DNS server.
            "dns_servers": "127.0.0.1:9",
        }
        if params:
            self.params.update(params)
        self.write_conf()
        self.write_table("domains", domains)
        self.write_table("aliases", aliases)
        self.write_table("accounts", "")
        self.proc = None
        self.stderr_path = os.path.join(self.root, "stderr.log")
        self.stderr_file = None
        self.san_offset = {}
        self.starts = 0
        for addr, pw, extra in accounts:
            self.ctl("account", "add", addr, "-p", pw, *extra)

    # -- files ---------------------------------------------------------------
    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write("# written by tests/integration/tsubame_harness.py\n")
            for k, v in self.params.items():
                if v is None:
                    continue
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf, 0o644)

    def table(self, name):
        return os.path.join(self.etc, name)

    def write_table(self, name, text):
        p = self.table(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o644)
        return p

    def append_table(self, name, text):
        with open(self.table(name), "a") as f:
            f.write(text)

    @property
    def logdir(self):
        return os.path.join(self.work, "log", self.params.get("hostname") or HOSTNAME)

    def log(self, name="main"):
        try:
            with open(os.path.join(self.logdir, name + ".log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=40):
        text = self.stderr_text() or self.log()
        return "\n".join(text.splitlines()[-n:])

    def pid_file(self):
        return os.path.join(self.work, "tsubamed.pid")

    def queue_files(self, state):
        """Files (recursively) under work/queue/<state>."""
        top = os.path.join(self.work, "queue", state)
        out = []
        for dirpath, _dirs, files in os.walk(top):
            out.extend(os.path.join(dirpath, f) for f in files)
        return out

    # -- processes ----------------------------------------------------------
    def env(self):
        e = dict(os.environ)
        e.update(SAN_ENV)
        return e

    def ctl(self, *args, check=True, input=None, timeout=30):
        cp = subprocess.run([TSUBAMECTL, "-c", self.conf] + list(args), input=input, capture_output=True,
                            timeout=timeout, env=self.env())
        out = cp.stdout.decode("utf-8", "replace")
        err = cp.stderr.decode("utf-8", "replace")
        cp.out, cp.err = out, err
        for mark in SANITIZER_MARKS:
            assert mark not in err, "tsubamectl %s: sanitizer report:\n%s" % (" ".join(args), err)
        if check:
            assert cp.returncode == 0, "tsubamectl %s -> %d\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(args), cp.returncode, out, err)
        return cp

    def run_tsubamed(self, *args, timeout=30):
        cp = subprocess.run([TSUBAMED] + list(args), capture_output=True, timeout=timeout, env=self.env())
        cp.out = cp.stdout.decode("utf-8", "replace")
        cp.err = cp.stderr.decode("utf-8", "replace")
        for mark in SANITIZER_MARKS:
            assert mark not in cp.err, "tsubamed %s: sanitizer report:\n%s" % (" ".join(args), cp.err)
        return cp

    def start(self, timeout=20.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._close_stderr()
        self.stderr_file = open(self.stderr_path, "ab")
        self.stderr_file.write(b"\n==== start %d ====\n" % self.starts)
        self.stderr_file.flush()
        self.starts += 1
        self.proc = subprocess.Popen([TSUBAMED, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.stderr_file, stderr=self.stderr_file, env=self.env(),
                                     start_new_session=True, close_fds=True)
        self.pgid = self.proc.pid
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("tsubamed exited with %s during start-up:\n%s" % (
                    self.proc.returncode, self.tail()))
            try:
                s = Session(self.port, host=self.host, timeout=3.0)
            except (OSError, SessionClosed) as e:
                last = e
                time.sleep(0.05)
                continue
            try:
                assert s.greeting.code == 220, "greeting %r" % s.greeting
                try:
                    s.cmd("QUIT", timeout=3.0)
                except (OSError, SessionClosed):
                    pass
            finally:
                s.close()
            return
        raise AssertionError("tsubamed not answering on port %d after %.0fs (%r):\n%s" % (
            self.port, timeout, last, self.tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.running(), "tsubamed is not running:\n%s" % self.tail()
        os.kill(self.proc.pid, sig)

    def kill9(self, timeout=10.0):
        """SIGKILL the whole process group and wait until every member is gone."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + timeout
        while live_group_members(self.pgid) and time.monotonic() < deadline:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        left = live_group_members(self.pgid)
        assert not left, "processes survived SIGKILL of group %d: %r" % (self.pgid, left)
        self._close_stderr()

    def stop(self, timeout=None):
        """SIGTERM, bounded wait, SIGKILL the group if needed.  Returns a list of problems."""
        problems = []
        if self.proc is None:
            return problems
        if timeout is None:
            timeout = float(self.params.get("shutdown_timeout") or 3) + 10.0
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append("tsubamed did not exit within %.0fs of SIGTERM" % timeout)
            rc = self.proc.poll()
            if rc is not None and rc != 0:
                problems.append("tsubamed exited with status %d after SIGTERM" % rc)
        else:
            problems.append("tsubamed had already exited with status %s" % self.proc.returncode)
        # children must follow the master
        deadline = time.monotonic() + 5.0
        while live_group_members(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = live_group_members(self.pgid)
        if left:
            problems.append("processes left after the master exited: %r" % left)
        if self.proc.poll() is None or left:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append("tsubamed survived SIGKILL")
        self._close_stderr()
        return problems

    def _close_stderr(self):
        if self.stderr_file:
            self.stderr_file.close()
            self.stderr_file = None

    def restart(self):
        self.stop()
        self.start()

    def sanitizer_reports(self, since_mark=False):
        """Sanitizer lines in stderr and main.log (optionally only those after the last mark())."""
        found = []
        for key, text in (("stderr", self.stderr_text()), ("main.log", self.log())):
            start = self.san_offset.get(key, 0) if since_mark else 0
            chunk = text[start:]
            hits = [chunk.index(m) for m in SANITIZER_MARKS if m in chunk]
            if hits:
                i = min(hits)
                b = chunk.rfind("\n", 0, max(0, i - 80)) + 1  # from the line before the first mark
                found.append("%s:\n%s" % (key, "\n".join(chunk[b:].splitlines()[:40])))
        return found

    def mark(self):
        self.san_offset = {"stderr": len(self.stderr_text()), "main.log": len(self.log())}

    # -- SMTP ----------------------------------------------------------------
    def smtp(self, timeout=10):
        return smtplib.SMTP(self.host, self.port, local_hostname="client.example", timeout=timeout)

    def session(self, timeout=10.0, port=None, **kw):
        kw.setdefault("host", self.host)
        return Session(port or self.port, timeout=timeout, **kw)

    def send(self, rcpts, body, sender="sender@client.test", mail_opts=(), rcpt_opts=()):
        """One message through smtplib; returns the qid from the 250 reply."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with self.smtp() as s:
            s.ehlo()
            code, msg = s.mail(sender, list(mail_opts))
            assert code == 250, (code, msg)
            for r in rcpts:
                code, msg = s.rcpt(r, list(rcpt_opts))
                assert code == 250, (r, code, msg)
            code, msg = s.data(body)
            assert code == 250, (code, msg)
            m = re.search(rb"queued as (\S+)", msg)
            s.quit()
            return m.group(1).decode() if m else None

    # -- Maildir -------------------------------------------------------------
    def maildir(self, user):
        local, domain = user.rsplit("@", 1)
        return os.path.join(self.mail, domain, local, "Maildir")

    def message_files(self, user):
        md = self.maildir(user)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            out.extend(os.path.join(d, n) for n in sorted(names))
        return out

    def messages(self, user):
        out = []
        for p in self.message_files(user):
            try:
                with open(p, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                pass
        return out

    def wait_for_messages(self, user, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            files = self.message_files(user)
            if len(files) >= n or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        assert len(files) >= n, "%s: %d message(s) after %.0fs, expected %d\n%s" % (
            user, len(files), timeout, n, self.tail())
        return self.messages(user)

    def find(self, user, tok):
        tb = tok.encode() if isinstance(tok, str) else tok
        return [m for m in self.messages(user) if tb in m]

    def wait_for_token(self, user, tok, n=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(user, tok)
            if len(found) >= n or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        assert len(found) >= n, "%s: %d message(s) with %s after %.0fs, expected %d\nqueue: %r\n%s" % (
            user, len(found), tok, timeout, n, self.queue_snapshot(), self.tail())
        return found

    def queue_snapshot(self):
        return {s: len(self.queue_files(s)) for s in ("incoming", "active", "deferred", "corrupt")}

    def forget_maildirsize(self, user):
        try:
            os.unlink(os.path.join(self.maildir(user), "maildirsize"))
        except FileNotFoundError:
            pass

    def fill_mailbox(self, user, nbytes):
        """Put a message file of nbytes into the user's Maildir/cur (for quota tests)."""
        md = self.maildir(user)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        name = "%d.M1P1Q1.filler,S=%d:2,S" % (int(time.time()), nbytes)
        p = os.path.join(md, "cur", name)
        with open(p, "wb") as f:
            f.write(b"Subject: filler\n\n" + b"x" * (nbytes - 18) + b"\n")
        # A Maildir++ writer keeps maildirsize up to date; this one just drops it (a recount follows).
        self.forget_maildirsize(user)
        if IS_ROOT:
            pw = pwd.getpwnam(RUN_USER)
            for dirpath, dirs, files in os.walk(os.path.join(self.mail)):
                os.chown(dirpath, pw.pw_uid, pw.pw_gid)
                for f in files:
                    os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)
        return p


def finish(daemon, request=None):
    """Stop a daemon and fail on sanitizer reports or an unclean stop."""
    problems = daemon.stop()
    reports = daemon.sanitizer_reports()
    if reports:
        problems.append("sanitizer report:\n" + "\n----\n".join(reports))
    if problems:
        pytest.fail("%s (%s): %s\n--- last log lines ---\n%s" % (
            daemon.name, daemon.root, "\n".join(problems), daemon.tail()), pytrace=False)


# --------------------------------------------------------------------------
# fixtures (imported into the conftest.py files)


@pytest.fixture(scope="session")
def base_dir(request):
    if not binaries_present():
        pytest.skip("tsubamed/tsubamectl not built in %s (run make asan)" % BIN)
    ensure_user()
    base = make_base_dir()
    yield base
    if request.session.testsfailed == 0 and not os.environ.get("TSUBAME_KEEP"):
        shutil.rmtree(base, ignore_errors=True)
    else:
        print("\ntest sites kept in %s" % base)


@pytest.fixture(scope="module")
def module_daemon(base_dir, request):
    d = Daemon(base_dir, name=request.module.__name__.split(".")[-1])
    d.start()
    yield d
    finish(d)


@pytest.fixture
def tsubame(module_daemon):
    """The module's shared daemon; after each test: still alive, no new sanitizer report."""
    module_daemon.mark()
    yield module_daemon
    assert module_daemon.running(), "tsubamed died during the test:\n%s" % module_daemon.tail()
    reports = module_daemon.sanitizer_reports(since_mark=True)
    assert not reports, "sanitizer report during the test:\n" + "\n".join(reports)


@pytest.fixture
def make_daemon(base_dir, request):
    """Factory: make_daemon(params={...}, start=True, ...) -> Daemon, stopped and checked at teardown."""
    made = []

    def factory(params=None, start=True, **kw):
        d = Daemon(base_dir, name=re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:40], params=params, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield factory
    for d in made:
        finish(d)
