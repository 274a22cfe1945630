"""ATRN, On-Demand Mail Relay (SPEC E6, RFC 2645; docs/atrn.md), both roles.

The provider (an ISP holding mail for site.test) on odmr_listen: a raw-socket customer that follows
RFC 2645 to the letter (EHLO, AUTH, ATRN, then it is the SMTP server: 220, EHLO, MAIL, RCPT, DATA,
221), and every refusal: ATRN on a normal listener (502), before AUTH (530), a wrong password
(535), an account not allowed for the domain (450), nothing waiting (453), bad syntax (501), MAIL
on the ODMR port (502).  The customer (`tsubamectl atrn`) against a raw-socket provider transcript,
and our provider and customer against each other: the held mail lands in the site's Maildir over
the customer's own connection.
"""
import base64
import os
import re
import socket
import time

import pytest

from tsubame_harness import TSUBAMECTL, Daemon, finish, free_port, token

SITE_DOMAINS = "example.test\nsite.test\n"


def wait_until(pred, timeout=15.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


@pytest.fixture(scope="module")
def isp(base_dir):
    odmr = free_port()
    d = Daemon(base_dir, name="isp", params={
        "auth_plaintext": "yes",
        "retry_interval": "1",
        "smtp_timeout": "5",
        "max_errors": "50",
        "odmr_listen": "127.0.0.1:%d" % odmr,
    })
    d.odmr_port = odmr
    d.write_table("relay", "127.0.0.1 true\n")
    d.write_table("hold",
                  "site.test    allow=demo@example.test\n"
                  "third.test   allow=bob@example.test\n"
                  "open.test    allow=*,127.0.0.1\n")
    d.start()
    yield d
    finish(d)


@pytest.fixture
def provider(isp):
    isp.mark()
    yield isp
    assert isp.running(), "tsubamed died during the test:\n%s" % isp.tail()
    reports = isp.sanitizer_reports(since_mark=True)
    assert not reports, "sanitizer report during the test:\n" + "\n".join(reports)


def send_held(d, rcpt, tok, sender="someone@outside.test"):
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<%s>" % sender, "250")
        s.expect("RCPT TO:<%s>" % rcpt, "250")
        s.expect("DATA", "354")
        s.send("From: %s\r\nSubject: %s\r\n\r\nheld mail %s\r\n.\r\n" % (sender, tok, tok))
        assert s.reply().code == 250
        s.expect("QUIT", "221")


class Raw:
    """A line-level socket for the RFC 2645 transcripts (either role)."""

    def __init__(self, sock):
        self.s = sock
        self.s.settimeout(15)
        self.buf = b""

    @classmethod
    def connect(cls, port, host="127.0.0.1"):
        return cls(socket.create_connection((host, port), timeout=15))

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("closed; have %r" % self.buf)
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines

    def send(self, text):
        self.s.sendall(text.encode())

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def until_dot(self):
        data = b""
        while b"\r\n.\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("closed in DATA")
            self.buf += chunk
        data, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return data.decode("utf-8", "replace")

    def closed(self, timeout=10):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.s.close()


def plain(user, pw):
    return base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()


def odmr_login(d, user="demo@example.test", pw="demo-pass"):
    c = Raw.connect(d.odmr_port)
    code, _ = c.reply()
    assert code == 220
    code, lines = c.cmd("EHLO customer.site.test")
    assert code == 250
    words = [ln[4:].split()[0].upper() for ln in lines[1:]]
    assert "ATRN" in words and "AUTH" in words, lines
    code, lines = c.cmd("AUTH PLAIN " + plain(user, pw))
    return c, code


# ---- the provider ---------------------------------------------------------------


def test_provider_rfc2645_transcript(provider):
    """A customer by the letter of RFC 2645: AUTH, ATRN, then it is the server and gets the mail."""
    tok = token()
    send_held(provider, "alice@site.test", tok)
    send_held(provider, "bob@site.test", tok + "b")
    c, code = odmr_login(provider)
    assert code == 235
    code, lines = c.cmd("ATRN site.test")
    assert code == 250 and "reversing" in lines[0], lines
    # Now we are the SMTP server (RFC 2645 4.3).
    c.send("220 customer.site.test ESMTP ready for ODMR\r\n")
    ehlo = c.line()
    assert re.match(r"^EHLO \S+$", ehlo), ehlo
    c.send("250-customer.site.test\r\n250 8BITMIME\r\n")
    got = []
    while True:
        ln = c.line()
        if ln.upper().startswith("QUIT"):
            c.send("221 bye\r\n")
            break
        if ln.upper().startswith("MAIL FROM:"):
            got.append({"from": ln, "rcpt": []})
            c.send("250 2.1.0 ok\r\n")
        elif ln.upper().startswith("RCPT TO:"):
            got[-1]["rcpt"].append(ln)
            c.send("250 2.1.5 ok\r\n")
        elif ln.upper() == "DATA":
            c.send("354 go\r\n")
            got[-1]["data"] = c.until_dot()
            c.send("250 2.0.0 queued\r\n")
        elif ln.upper() == "RSET":
            c.send("250 ok\r\n")
        else:
            c.send("500 what\r\n")
    assert c.closed()
    c.close()
    assert len(got) == 2, got
    rcpts = sorted(r for g in got for r in g["rcpt"])
    assert rcpts == ["RCPT TO:<alice@site.test>", "RCPT TO:<bob@site.test>"], rcpts
    assert all("someone@outside.test" in g["from"] for g in got)
    assert any(tok in g["data"] for g in got)
    # delivered: the queue is empty and the delivery log names the ATRN connection
    assert wait_until(lambda: "relay=atrn" in provider.log("delivery") and tok in provider.log("main") or
                      "relay=atrn" in provider.log("delivery"))


def test_provider_nothing_waiting_453(provider):
    c, code = odmr_login(provider)
    assert code == 235
    code, lines = c.cmd("ATRN site.test")
    assert code == 453, lines
    code, lines = c.cmd("ATRN")
    assert code == 453, lines
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_provider_refusals(provider):
    tok = token()
    send_held(provider, "x@third.test", tok)
    # before AUTH: 530
    c = Raw.connect(provider.odmr_port)
    c.reply()
    assert c.cmd("EHLO customer.site.test")[0] == 250
    assert c.cmd("ATRN site.test")[0] == 530
    # MAIL is not served on the ODMR port
    assert c.cmd("MAIL FROM:<a@site.test>")[0] == 502
    c.close()
    # a wrong password: 535, and ATRN is still refused
    c, code = odmr_login(provider, pw="wrong")
    assert code == 535
    assert c.cmd("ATRN site.test")[0] == 530
    c.close()
    # an account not allowed for the domain: 450, nothing reversed
    c, code = odmr_login(provider)
    assert code == 235
    code, lines = c.cmd("ATRN third.test")
    assert code == 450, lines
    # a domain we do not hold; allow=* is not enough for ATRN either
    assert c.cmd("ATRN nothere.test")[0] == 450
    assert c.cmd("ATRN open.test")[0] == 450
    assert c.cmd("ATRN bad..name")[0] == 501
    assert c.cmd("QUIT")[0] == 221
    c.close()
    # the third.test mail is still held for bob, who may collect it
    c, code = odmr_login(provider, user="bob@example.test", pw="bob-pass")
    assert code == 235
    assert c.cmd("ATRN third.test")[0] == 250
    c.send("220 other ready\r\n")
    assert c.line().startswith("EHLO")
    c.send("250 other\r\n")
    assert c.line().startswith("MAIL FROM:")
    c.send("250 ok\r\n")
    assert c.line() == "RCPT TO:<x@third.test>"
    c.send("250 ok\r\n")
    assert c.line() == "DATA"
    c.send("354 go\r\n")
    assert tok in c.until_dot()
    c.send("250 ok\r\n")
    assert c.line() == "QUIT"
    c.send("221 bye\r\n")
    c.close()


def test_provider_customer_drops_mail_stays_held(provider):
    tok = token()
    send_held(provider, "carl@site.test", tok)
    c, code = odmr_login(provider)
    assert c.cmd("ATRN")[0] == 250
    c.send("220 customer ready\r\n")
    assert c.line().startswith("EHLO")
    c.close()   # the customer goes away: the mail waits for the next ATRN
    assert wait_until(lambda: "ATRN connection" in provider.log("delivery") or "deferred" in provider.log("delivery"))
    c, code = odmr_login(provider)
    assert c.cmd("ATRN site.test")[0] == 250
    c.send("220 customer ready\r\n")
    c.line()
    c.send("250 ok\r\n")
    assert c.line().startswith("MAIL FROM:")
    c.send("250 ok\r\n")
    assert c.line() == "RCPT TO:<carl@site.test>"
    c.send("250 ok\r\n")
    assert c.line() == "DATA"
    c.send("354 go\r\n")
    assert tok in c.until_dot()
    c.send("250 ok\r\n")
    assert c.line() == "QUIT"
    c.send("221 bye\r\n")
    c.close()


def test_atrn_on_normal_listener_502(provider):
    with provider.session() as s:
        s.ehlo()
        s.auth_plain("demo@example.test", "demo-pass")
        r = s.cmd("ATRN site.test")
        assert r.code == 502, r


# ---- the customer ---------------------------------------------------------------


@pytest.fixture(scope="module")
def site(base_dir):
    d = Daemon(base_dir, name="dialsite", host="127.0.0.2", domains=SITE_DOMAINS,
               accounts=[("alice@site.test", "alice-pass", []), ("bob@site.test", "bob-pass", [])])
    d.start()
    pw = os.path.join(d.root, "atrn.pw")
    with open(pw, "w") as f:
        f.write("demo-pass\n")
    d.pwfile = pw
    yield d
    finish(d)


def test_our_provider_and_our_customer(provider, site):
    """Held mail at the ISP reaches the site's Maildir over the site's own connection."""
    tok = token()
    send_held(provider, "alice@site.test", tok)
    send_held(provider, "bob@site.test", tok + "x")
    site.mark()
    cp = site.ctl("atrn", "--user", "demo@example.test", "--password-file", site.pwfile,
                  "127.0.0.1:%d" % provider.odmr_port, "site.test")
    assert "reversed connection" in cp.out, cp.out
    site.wait_for_token("alice@site.test", tok)
    site.wait_for_token("bob@site.test", tok + "x")
    # the site's smtpd saw the session come from its own splice (a loopback client), the ISP logged relay=atrn
    assert re.search(r"relay=atrn:demo@example\.test", provider.log("delivery"))
    assert "event=atrn_reversed" in provider.log("main")
    # nothing left: a second ATRN says so
    cp = site.ctl("atrn", "--user", "demo@example.test", "--password-file", site.pwfile,
                  "127.0.0.1:%d" % provider.odmr_port)
    assert "no mail waiting" in cp.out, cp.out


def test_customer_refusals(provider, site):
    bad = os.path.join(site.root, "bad.pw")
    with open(bad, "w") as f:
        f.write("nope\n")
    cp = site.ctl("atrn", "--user", "demo@example.test", "--password-file", bad,
                  "127.0.0.1:%d" % provider.odmr_port, "site.test", check=False)
    assert cp.returncode == 1 and "535" in cp.out, (cp.out, cp.err)
    cp = site.ctl("atrn", "--user", "demo@example.test", "--password-file", site.pwfile,
                  "127.0.0.1:%d" % provider.odmr_port, "third.test", check=False)
    assert cp.returncode == 1 and "450" in cp.out, (cp.out, cp.err)
    cp = site.ctl("atrn", "--user", "demo@example.test", "--password-file", site.pwfile,
                  "127.0.0.1:%d" % provider.odmr_port, "bad..name", check=False)
    assert cp.returncode == 2


def test_customer_against_raw_provider(site):
    """The test plays the ISP by RFC 2645; `tsubamectl atrn` splices us into the site's smtpd."""
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.3", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    tok = token()
    seen = {}

    def isp():
        conn, _ = srv.accept()
        c = Raw(conn)
        c.send("220 isp.test ESMTP ODMR\r\n")
        seen["ehlo"] = c.line()
        c.send("250-isp.test\r\n250-AUTH PLAIN LOGIN\r\n250 ATRN\r\n")
        seen["auth"] = c.line()
        c.send("235 2.7.0 ok\r\n")
        seen["atrn"] = c.line()
        c.send("250 OK now reversing the connection\r\n")
        # now we are the client of the site's smtpd
        code, lines = c.reply()
        seen["greeting"] = (code, lines)
        seen["ehlo_reply"] = c.cmd("EHLO isp.test")
        seen["mail"] = c.cmd("MAIL FROM:<someone@outside.test>")
        seen["rcpt"] = c.cmd("RCPT TO:<alice@site.test>")
        seen["data"] = c.cmd("DATA")
        c.send("From: someone@outside.test\r\nSubject: %s\r\n\r\nvia raw ATRN %s\r\n.\r\n" % (tok, tok))
        seen["dot"] = c.reply()
        seen["quit"] = c.cmd("QUIT")
        seen["closed"] = c.closed()
        c.close()

    t = threading.Thread(target=isp)
    t.start()
    cp = site.ctl("atrn", "--user", "demo@example.test", "--password-file", site.pwfile,
                  "127.0.0.3:%d" % port, "site.test", "example.test")
    t.join(20)
    srv.close()
    assert seen["ehlo"].startswith("EHLO ")
    assert seen["auth"].startswith("AUTH PLAIN ")
    assert base64.b64decode(seen["auth"].split()[2]) == b"\0demo@example.test\0demo-pass"
    assert seen["atrn"] == "ATRN site.test,example.test"
    assert seen["greeting"][0] == 220
    assert seen["ehlo_reply"][0] == 250 and seen["mail"][0] == 250 and seen["rcpt"][0] == 250
    assert seen["data"][0] == 354 and seen["dot"][0] == 250 and seen["quit"][0] == 221
    assert seen["closed"]
    assert "reversed connection" in cp.out
    site.wait_for_token("alice@site.test", tok)


def test_atrn_when_the_link_comes_up(provider, base_dir):
    """E6 on link-up: a dial-up site runs `tsubamectl atrn` from link_up_command each time its link
    comes up, and the held mail arrives over its own connection."""
    d = Daemon(base_dir, name="dialup-atrn", host="127.0.0.3", domains=SITE_DOMAINS,
               accounts=[("alice@site.test", "alice-pass", [])],
               params={"dialup": "yes", "link_hold_open": "0"})
    pw = os.path.join(d.root, "atrn.pw")
    with open(pw, "w") as f:
        f.write("demo-pass\n")
    d.params["link_up_command"] = "%s -c %s atrn --user demo@example.test --password-file %s 127.0.0.1:%d site.test" % (
        TSUBAMECTL, d.conf, pw, provider.odmr_port)
    d.write_conf()
    d.start()
    try:
        tok = token()
        send_held(provider, "alice@site.test", tok)
        time.sleep(1.0)
        assert not d.find("alice@site.test", tok), "delivered before the link came up"
        d.ctl("link", "up")
        d.wait_for_token("alice@site.test", tok, timeout=20)
        deadline = time.monotonic() + 10
        while "event=link_up_command result=ok" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "event=link_up_command result=ok" in d.log(), d.log()[-3000:]
    finally:
        finish(d)
