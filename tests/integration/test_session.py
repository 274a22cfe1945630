"""Full SMTP sessions: smtplib, swaks, every command's reply (docs/smtp-replies.md)."""

import subprocess

import pytest

from tsubame_harness import HOSTNAME, split_delivered, strip_brackets, token

EHLO_KEYWORDS = {"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "VRFY"}


def test_greeting(tsubame):
    with tsubame.session() as s:
        assert s.greeting.code == 220
        assert s.greeting.first == "%s ESMTP Tsubame" % HOSTNAME


def test_smtplib_full_session(tsubame):
    tok = token()
    body = "From: a@client.test\r\nTo: demo@example.test\r\nSubject: smtplib %s\r\n\r\nhello\r\n" % tok
    with tsubame.smtp() as s:
        code, _ = s.ehlo()
        assert code == 250
        code, msg = s.mail("sender@client.test")
        assert (code, msg) == (250, b"2.1.0 Ok")
        code, msg = s.rcpt("demo@example.test")
        assert (code, msg) == (250, b"2.1.5 Ok")
        code, msg = s.data(body)
        assert code == 250 and msg.startswith(b"2.0.0 Ok: queued as "), msg
        code, msg = s.quit()
        assert (code, msg) == (221, b"2.0.0 Bye")
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    rp, dt, rec, rest = split_delivered(m)
    assert strip_brackets(rp) == b"sender@client.test"
    assert strip_brackets(dt) == b"demo@example.test"
    assert rest == body.replace("\r\n", "\n").encode()


def test_ehlo_keywords(tsubame):
    with tsubame.session() as s:
        r = s.cmd("EHLO client.example")
        assert r.code == 250
        assert r.lines[0] == HOSTNAME
        kws = {l.split()[0] for l in r.lines[1:]}
        assert EHLO_KEYWORDS <= kws, r.lines
        assert "SIZE 200000" in r.lines[1:], r.lines


def test_ehlo_size_unlimited(make_daemon):
    d = make_daemon(params={"max_message_size": "0"})
    with d.session() as s:
        r = s.cmd("EHLO client.example")
        assert "SIZE" in r.lines[1:], r.lines
        s.expect("MAIL FROM:<a@client.test> SIZE=999999999", "250 2.1.0")


def test_helo(tsubame):
    with tsubame.session() as s:
        r = s.cmd("HELO client.example")
        assert r.code == 250 and r.lines == [HOSTNAME]
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("QUIT", "221 2.0.0")


def test_helo_ehlo_without_argument(tsubame):
    with tsubame.session() as s:
        s.expect("EHLO", "501 5.5.4")
        s.expect("HELO", "501 5.5.4")
        s.expect("EHLO client.example", "250")


def test_rset_noop_help_quit(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        s.expect("NOOP", "250 2.0.0 Ok")
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RSET", "250 2.0.0 Ok")
        # RSET ended the transaction: RCPT needs a new MAIL, MAIL is not nested
        s.expect("RCPT TO:<demo@example.test>", "503 5.5.1")
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        r = s.cmd("HELP")
        assert r.startswith("214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP"), r
        s.expect("QUIT", "221 2.0.0 Bye")
        assert s.wait_closed(5)


def test_turn_and_unimplemented(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        s.expect("TURN", "502 5.7.0 Error: TURN is not supported")
        s.expect("XYZZY", "500 5.5.2 Error: command not recognized")
        s.expect("NOOP", "250 2.0.0")


def test_bad_sequences(tsubame):
    with tsubame.session() as s:
        s.expect("MAIL FROM:<a@client.test>", "503 5.5.1 Error: send HELO/EHLO first")
        s.expect("RCPT TO:<demo@example.test>", "503 5.5.1")
        s.expect("DATA", "503 5.5.1")
        s.ehlo()
        s.expect("RCPT TO:<demo@example.test>", "503 5.5.1 Error: need MAIL command")
        s.expect("DATA", "503 5.5.1")
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("MAIL FROM:<b@client.test>", "503 5.5.1 Error: nested MAIL command")
        s.expect("DATA", "503 5.5.1 Error: need RCPT command")
        s.expect("RCPT TO:<nobody@example.test>", "550 5.1.1")
        s.expect("DATA", "503 5.5.1 Error: need RCPT command")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(b"Subject: seq\r\n\r\nx\r\n.\r\n")
        assert s.reply().startswith("250 2.0.0 Ok: queued as ")
        s.expect("QUIT", "221")


def test_syntax_errors(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<not an address>", "553 5.1.7")
        s.expect("MAIL FROM:<a@client.test> FOO=BAR", "555 5.5.4")
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<not an address>", "553 5.1.3")
        s.expect("RCPT TO:<demo@example.test> FOO=BAR", "555 5.5.4")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")


def test_mail_null_sender(tsubame):
    tok = token()
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(("Subject: null %s\r\n\r\nbounce-like\r\n.\r\n" % tok).encode())
        assert s.reply().startswith("250 2.0.0")
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert m.startswith(b"Return-Path: <>\n")


def test_vrfy_expn_yes(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        r = s.cmd("VRFY demo@example.test")
        assert r.startswith("250 2.1.5") and "demo@example.test" in r.text, r
        s.expect("VRFY nobody@example.test", "550 5.1.1")
        r = s.cmd("EXPN info@example.test")
        assert r.code == 250 and r.enh() == "2.1.5" and "demo@example.test" in r.text, r
        s.expect("NOOP", "250")


def test_vrfy_expn_no(make_daemon):
    d = make_daemon(params={"vrfy_expn": "no"})
    with d.session() as s:
        s.ehlo()
        for c in ("VRFY demo@example.test", "VRFY nobody@example.test", "EXPN info@example.test"):
            s.expect(c, "252 2.5.2")


def test_starttls_auth_not_offered(tsubame):
    # No certificate configured: no STARTTLS; AUTH exists but only under TLS (RFC 4954 538).
    with tsubame.session() as s:
        s.ehlo()
        s.expect("STARTTLS", "502 5.5.1")
        s.expect("AUTH PLAIN AGRhAGI=", "538 5.7.11")
        s.expect("NOOP", "250")


@pytest.mark.parametrize("extra", [[], ["--pipeline"], ["--protocol", "SMTP"], ["--protocol", "ESMTP", "--body", "x" * 5000]],
                         ids=["plain", "pipeline", "helo", "bigger"])
def test_swaks(tsubame, extra):
    tok = token()
    cp = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % tsubame.port, "--to", "demo@example.test",
                         "--from", "swaks@client.test", "--helo", "swaks.client.test",
                         "--header", "Subject: swaks %s" % tok, "--timeout", "15"] + extra,
                        capture_output=True, timeout=60)
    out = cp.stdout.decode("utf-8", "replace")
    assert cp.returncode == 0, out + cp.stderr.decode("utf-8", "replace")
    assert "250 2.0.0 Ok: queued as" in out, out
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    _, dt, rec, rest = split_delivered(m)
    assert strip_brackets(dt) == b"demo@example.test"
    assert b"swaks.client.test" in rec
