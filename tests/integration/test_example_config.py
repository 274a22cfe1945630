"""The shipped example configuration (`make run`, scripts/run-example.sh): authenticated submission on
2587 relays, strangers cannot relay on 2525, implicit TLS on 2465, local delivery, SIGTERM stops it.

The script renders etc/example/tsubamed.conf.in into a fresh run folder, creates the demo account with
a random password (saved in <run>/demo-password), makes a certificate and runs tsubamed in the
foreground on 127.0.0.1:2525, :2465 (implicit TLS) and :2587 (submission).  Those ports are fixed by
the example: when something else holds them the test fails and says so.
"""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from tsubame_harness import (BIN, REPO, SANITIZER_MARKS, SAN_ENV, Session, client_tls_context, live_group_members,
                             token)

PORTS = {"smtp": 2525, "smtps": 2465, "submission": 2587}


def port_busy(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


class Example:
    def __init__(self, run, proc, out_path):
        self.run, self.proc, self.out_path = run, proc, out_path

    def output(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    @property
    def password(self):
        with open(os.path.join(self.run, "demo-password")) as f:
            return f.read().strip()

    def maildir_files(self, user="demo", domain="example.test"):
        md = os.path.join(self.run, "mail", domain, user, "Maildir")
        out = []
        for sub in ("new", "cur"):
            try:
                out += [os.path.join(md, sub, n) for n in os.listdir(os.path.join(md, sub))]
            except FileNotFoundError:
                pass
        return out

    def ctl(self, *args):
        cp = subprocess.run([os.path.join(BIN, "tsubamectl"), "-c", os.path.join(self.run, "tsubamed.conf")] +
                            list(args), capture_output=True, timeout=30, env=dict(os.environ, **SAN_ENV))
        return cp.stdout.decode("utf-8", "replace") + cp.stderr.decode("utf-8", "replace")

    def log(self):
        p = os.path.join(self.run, "work", "log", "mx.example.test", "main.log")
        try:
            with open(p, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


@pytest.fixture(scope="module")
def example(base_dir):
    busy = ["127.0.0.1:%d (%s)" % (p, n) for n, p in PORTS.items() if port_busy(p)]
    busy += ["127.0.0.2:2525 (virtual host)"] if port_busy(PORTS["smtp"], "127.0.0.2") else []
    if busy:
        pytest.fail("the example configuration needs ports 2525, 2465 and 2587 on 127.0.0.1, but %s "
                    "%s already in use (is `make run` running? The suite can run in its own network namespace: "
                    "unshare -n sh -c 'ip link set lo up && scripts/run-integration.sh')" % (", ".join(busy), "is" if len(busy) == 1 else "are"),
                    pytrace=False)
    run = os.path.join(base_dir, "example-run")
    os.makedirs(run)
    os.chmod(run, 0o755)
    out_path = os.path.join(base_dir, "example-run.out")
    # The example would resolve external domains through /etc/resolv.conf: keep the test on loopback.
    env = dict(os.environ, TSUBAME_RUN=run, TSUBAME_BIN=BIN, TSUBAME_EXAMPLE_EXTRA="dns_servers = 127.0.0.1:9",
               **SAN_ENV)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([os.path.join(REPO, "scripts", "run-example.sh")], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO)
    ex = Example(run, proc, out_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "run-example.sh exited with %s:\n%s" % (proc.returncode, ex.output())
            try:
                with Session(PORTS["smtp"], timeout=3) as s:
                    if s.greeting.code == 220:
                        s.cmd("QUIT")
                        break
            except (OSError, Exception):
                pass
            assert time.monotonic() < deadline, "example not answering on 2525 after 60s:\n%s" % ex.output()
            time.sleep(0.1)
        yield ex
    finally:
        problems = []
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)   # exec'd: this is tsubamed itself
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                problems.append("tsubamed did not stop within 20s of SIGTERM")
        if proc.returncode not in (0, None):
            problems.append("tsubamed exited with %s after SIGTERM" % proc.returncode)
        deadline = time.monotonic() + 5
        while live_group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = live_group_members(proc.pid)
        if left or proc.poll() is None:
            problems.append("processes left: %r" % left)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        text = ex.output() + ex.log()
        problems += ["sanitizer report: %s" % m for m in SANITIZER_MARKS if m in text]
        if problems:
            pytest.fail("example: %s\n%s" % ("; ".join(problems), text[-3000:]), pytrace=False)


def test_banner_and_password(example):
    out = example.output()
    assert example.password and len(example.password) >= 12, example.password
    assert example.password in out, out
    assert "127.0.0.1:2587" in out, out


def test_authenticated_submission_relays(example):
    tok = token()
    with Session(PORTS["submission"], timeout=10) as s:
        r = s.ehlo()
        assert "STARTTLS" in r.lines, r
        s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0")
        s.starttls()
        s.ehlo()
        s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0 Authentication required")
        assert s.auth_plain("demo@example.test", example.password).startswith("235 2.7.0")
        s.expect("MAIL FROM:<demo@example.test>", "250 2.1.0")
        s.expect("RCPT TO:<someone@example.org>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send("From: demo@example.test\r\nSubject: %s\r\n\r\nsubmitted\r\n.\r\n" % tok)
        r = s.reply()
        m = re.search(r"queued as (\S+)", r.text)
        assert r.code == 250 and m, r
        s.expect("QUIT", "221")
    out = example.ctl("queue", "list")
    assert m.group(1) in out and "someone@example.org(R)" in out, out
    example.ctl("queue", "delete", m.group(1))


def test_smtplib_submission_login(example):
    with smtplib.SMTP("127.0.0.1", PORTS["submission"], local_hostname="client.example", timeout=10) as c:
        c.starttls(context=client_tls_context())
        c.login("demo@example.test", example.password)
        refused = c.sendmail("demo@example.test", ["friend@example.org"], "Subject: smtplib\r\n\r\nx\r\n")
        assert refused == {}


def test_stranger_cannot_relay(example):
    with Session(PORTS["smtp"], timeout=10) as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250 2.1.0")
        s.expect("RCPT TO:<friend@elsewhere.test>", "550 5.7.1 <friend@elsewhere.test>: Relaying denied")
        s.expect("RSET", "250")
        s.expect("MAIL FROM:<>", "250 2.1.0")
        s.expect("RCPT TO:<friend@elsewhere.test>", "550 5.7.1")
        s.expect("RSET", "250")
        # forging the local account: level 3 demands AUTH (after STARTTLS)
        s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0 Must issue a STARTTLS command first")
        s.starttls()
        s.ehlo()
        s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0 Authentication required")
        s.expect("MAIL FROM:<someone@outside.test>", "250 2.1.0")
        s.expect("RCPT TO:<friend@elsewhere.test>", "550 5.7.1 <friend@elsewhere.test>: Relaying denied")
        s.expect("QUIT", "221")
    # wrong password: no relaying either
    with Session(PORTS["submission"], timeout=10) as s:
        s.ehlo()
        s.starttls()
        s.ehlo()
        assert s.auth_plain("demo@example.test", "not-the-password").startswith("535 5.7.8")


def test_implicit_tls(example):
    with Session(PORTS["smtps"], timeout=10, tls=True) as s:
        assert s.greeting.startswith("220 mx.example.test"), s.greeting
        assert s.tls_version in ("TLSv1.2", "TLSv1.3"), s.tls_version
        r = s.ehlo()
        assert "AUTH PLAIN LOGIN CRAM-MD5" in r.lines and "STARTTLS" not in r.lines, r
        s.expect("QUIT", "221")


def test_local_delivery(example):
    tok = token()
    before = len(example.maildir_files())
    with Session(PORTS["smtp"], timeout=10) as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send("Subject: %s\r\n\r\nlocal\r\n.\r\n" % tok)
        assert s.reply().code == 250
        s.expect("QUIT", "221")
    deadline = time.monotonic() + 15
    found = False
    while not found and time.monotonic() < deadline:
        for p in example.maildir_files():
            try:
                if tok.encode() in open(p, "rb").read():
                    found = True
            except OSError:
                pass
        time.sleep(0.05)
    assert found, "no delivery in %s (before: %d files)\n%s" % (example.run, before, example.log()[-2000:])


def test_virtual_host_on_its_own_address(example):
    # etc/example/domains: branch.test is bound to 127.0.0.2 and greets as mx.branch.test there.
    with Session(PORTS["smtp"], host="127.0.0.2", timeout=10) as s:
        assert s.greeting.startswith("220 mx.branch.test ESMTP"), s.greeting
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250 2.1.0")
        s.expect("RCPT TO:<postmaster@branch.test>", "250 2.1.5")
        s.expect("RCPT TO:<postmaster@example.test>", "250 2.1.5")   # a shared domain
    with Session(PORTS["smtp"], timeout=10) as s:
        assert s.greeting.startswith("220 mx.example.test ESMTP"), s.greeting
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250 2.1.0")
        s.expect("RCPT TO:<postmaster@branch.test>", "550 5.7.1 <postmaster@branch.test>: Recipient address rejected")


def test_dialup_demo_held_until_etrn(example):
    """The example holds mail for dialup.test; a client on 127.0.0.1 releases it with ETRN to 127.0.0.1:2526."""
    from delivery_peers import Sink
    tok = token()
    sink = None if port_busy(2526) else Sink("127.0.0.1", 2526)
    try:
        with Session(PORTS["smtp"], timeout=10) as s:
            r = s.ehlo()
            assert "ETRN" in r.lines, r
            s.expect("MAIL FROM:<someone@outside.test>", "250 2.1.0")
            s.expect("RCPT TO:<customer@dialup.test>", "250 2.1.5")
            s.expect("DATA", "354")
            s.send("Subject: %s\r\n\r\nfor the dial-up customer\r\n.\r\n" % tok)
            r = s.reply()
            m = re.search(r"queued as (\S+)", r.text)
            assert r.code == 250 and m, r
            time.sleep(1.5)
            assert "customer@dialup.test(R)" in example.ctl("queue", "list")
            if sink:
                assert not sink.messages, "held mail was delivered before the ETRN"
            s.expect("ETRN dialup.test", "253 2.0.0 OK, 1 pending messages for node dialup.test started")
            s.expect("QUIT", "221")
        if sink:
            msgs = sink.wait_messages(1)
            assert tok.encode() in msgs[0]["data"], msgs
        else:
            example.ctl("queue", "delete", m.group(1))
    finally:
        if sink:
            sink.stop()
