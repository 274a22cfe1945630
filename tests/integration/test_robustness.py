"""Hostile input: NUL bytes, bare CR/LF in commands, 100 KB lines, garbage. The server stays up and in sync."""

import os
import random
import socket

import pytest

from tsubame_harness import Session, SessionClosed, qid_of, split_delivered, token

BAD_CHAR = "500 5.5.2 Error: bad character in command"
TOO_LONG = "500 5.5.2 Error: line too long"


@pytest.mark.parametrize("line", [
    b"NOOP\x00",
    b"\x00NOOP",
    b"MAIL FROM:<a\x00b@client.test>",
    b"EHLO cli\x00ent.example",
    b"NOOP\rRSET",
    b"NOOP\nQUIT",
    b"RCPT TO:<demo@example.test>\nRCPT TO:<bob@example.test>",
], ids=["nul-end", "nul-start", "nul-mail", "nul-ehlo", "bare-cr", "bare-lf", "bare-lf-rcpt"])
def test_bad_characters_in_command(tsubame, line):
    with tsubame.session() as s:
        s.ehlo()
        s.send(line + b"\r\nNOOP\r\n")
        r = s.reply()
        assert r.startswith(BAD_CHAR), r
        # exactly one reply for the bad line: the NOOP answer comes next, not a 221
        r = s.reply()
        assert r.startswith("250 2.0.0"), r
        assert s.pending(0.2) == b""
        s.expect("QUIT", "221")


def test_nul_in_data(tsubame):
    tok = token().encode()
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<demo@example.test>", "250")
        s.expect("DATA", "354")
        s.send(b"Subject: nul " + tok + b"\r\n\r\nbefore\x00after\r\n\x00\r\n.\r\n")
        r = s.reply()
        # either accepted (and then delivered, never lost) or refused with an enhanced code
        assert r.code == 250 or (r.code >= 500 and r.enh()), r
        s.expect("NOOP", "250 2.0.0")
        s.expect("QUIT", "221")
    if r.code == 250:
        tsubame.wait_for_token("demo@example.test", tok)


@pytest.mark.parametrize("prefix", [b"NOOP ", b"MAIL FROM:<", b"", b"EHLO "], ids=["noop", "mail", "junk", "ehlo"])
def test_100k_command_line(tsubame, prefix):
    with tsubame.session(timeout=20) as s:
        s.ehlo()
        s.send(prefix + b"A" * 100000 + b"\r\nNOOP\r\n")
        r = s.reply()
        assert r.startswith(TOO_LONG), r
        r = s.reply()
        assert r.startswith("250 2.0.0"), "the long line produced more than one reply: %r" % r
        assert s.pending(0.3) == b""
        # and a whole transaction still works in this session
        tok = token()
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(("Subject: after100k %s\r\n\r\nx\r\n.\r\n" % tok).encode())
        assert qid_of(s.reply())
    tsubame.wait_for_token("demo@example.test", tok)


def test_100k_line_trickled(tsubame):
    """The long line in many small writes (limits are checked on partial input)."""
    with tsubame.session(timeout=20) as s:
        s.ehlo()
        for _ in range(25):
            s.send(b"B" * 4096)
        s.send(b"\r\nNOOP\r\n")
        assert s.reply().startswith(TOO_LONG)
        assert s.reply().startswith("250 2.0.0")


def test_100k_line_with_nul_and_no_crlf_then_close(tsubame):
    """A client that sends a huge NUL-laden line and disconnects does not hurt the daemon."""
    c = socket.create_connection(("127.0.0.1", tsubame.port), timeout=10)
    c.recv(1000)
    try:
        c.sendall(b"\x00" * 100000)
    except OSError:
        pass
    c.close()
    with tsubame.session() as s:
        s.ehlo()
        s.expect("NOOP", "250")


def test_long_data_lines_are_content(tsubame):
    """A 100 KB line inside DATA is message content, not a command (no line limit applies there)."""
    tok = token().encode()
    long_line = b"L" * 100000
    with tsubame.session(timeout=20) as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<demo@example.test>", "250")
        s.expect("DATA", "354")
        s.send(b"Subject: longdata " + tok + b"\r\n\r\n" + long_line + b"\r\n.\r\n")
        r = s.reply()
        assert qid_of(r), r
        s.expect("NOOP", "250")
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == b"Subject: longdata " + tok + b"\n\n" + long_line + b"\n"


def test_random_garbage_sessions(tsubame):
    """Random bytes (seeded) in 30 sessions: every reply well-formed, daemon alive after each."""
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    alphabet = b"\x00\r\n .:<>@\"\\ABCDEFGHIJKLMNOPQRSTUVWXYZmailrcptdatabdat0123456789\xff\xc3\xa9"
    for i in range(30):
        with tsubame.session(timeout=5) as s:
            junk = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 3000)))
            try:
                s.send(junk + b"\r\nRSET\r\nNOOP\r\nQUIT\r\n")
                deadline_replies = 200
                while deadline_replies:
                    deadline_replies -= 1
                    r = s.reply(timeout=5)
                    assert 200 <= r.code < 600, (seed, r)
                    if r.code in (221, 421) or r.startswith("554 5.5.0"):
                        break
            except (SessionClosed, ConnectionResetError, BrokenPipeError):
                pass
            except socket.timeout:
                pass  # the junk may have left the server legitimately waiting (e.g. for BDAT bytes)
        assert tsubame.running(), "seed %d: daemon died:\n%s" % (seed, tsubame.tail())
    with tsubame.session() as s:
        s.ehlo()
        s.expect("NOOP", "250")


def test_client_disconnects_mid_transaction(tsubame):
    tok = token().encode()
    for cut in ("after-mail", "in-data", "in-bdat"):
        s = Session(tsubame.port)
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        if cut != "after-mail":
            s.expect("RCPT TO:<demo@example.test>", "250")
            if cut == "in-data":
                s.expect("DATA", "354")
                s.send(b"Subject: cut " + tok + b"\r\n\r\nhalf")
            else:
                s.send(b"BDAT 1000 LAST\r\nSubject: cut " + tok + b"\r\n")
        s.close()
    sent = token()
    tsubame.send("demo@example.test", "Subject: sentinel %s\r\n\r\nx\r\n" % sent)
    tsubame.wait_for_token("demo@example.test", sent)
    assert tsubame.find("demo@example.test", tok) == []
