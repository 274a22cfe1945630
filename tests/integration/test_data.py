"""Message content: dot transparency byte for byte, 8BITMIME, SMTPUTF8, Received:, mail loops."""

import re

from tsubame_harness import HOSTNAME, qid_of, split_delivered, strip_brackets, token


def send_raw(d, content, rcpt="demo@example.test", sender="raw@client.test", mail_params="",
             helo="client.example"):
    """DATA with content given already dot-stuffed and terminated; returns the final reply."""
    with d.session() as s:
        s.expect("EHLO " + helo, "250")
        s.expect(("MAIL FROM:<%s>%s" % (sender, mail_params)).encode("utf-8"), "250 2.1.0")
        s.expect(("RCPT TO:<%s>" % rcpt).encode("utf-8"), "250 2.1.5")
        s.expect("DATA", "354")
        s.send(content)
        r = s.reply()
        s.expect("NOOP", "250")
        return r


def stuff(lines):
    """Dot-stuff CRLF lines and append the terminator (RFC 5321 4.5.2)."""
    out = b""
    for l in lines:
        out += (b"." + l if l.startswith(b".") else l) + b"\r\n"
    return out + b".\r\n"


def test_dot_stuffing_round_trip(tsubame):
    tok = token().encode()
    lines = [
        b"From: dots@client.test",
        b"Subject: dots " + tok,
        b"",
        b".leading dot",
        b"..two dots",
        b".",
        b"...",
        b". space after dot",
        b"",
        b"trailing spaces   ",
        b"\ttab line",
        b"x" * 5000,
        b".",
        b"end",
    ]
    content = stuff(lines)
    assert b"\r\n..\r\n" in content  # the lone '.' lines went out stuffed
    r = send_raw(tsubame, content)
    assert qid_of(r), r
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    _, _, _, rest = split_delivered(m)
    assert rest == b"\n".join(lines) + b"\n"


def test_dot_stuffing_smtplib(tsubame):
    tok = token()
    body = "Subject: smtplib dots %s\r\n\r\n.one\r\n..two\r\n.\r\nlast\r\n" % tok
    tsubame.send("demo@example.test", body)
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == body.replace("\r\n", "\n").encode()


def test_empty_body_and_no_final_newline_in_content(tsubame):
    tok = token().encode()
    r = send_raw(tsubame, b"Subject: nobody " + tok + b"\r\n.\r\n")
    assert qid_of(r), r
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == b"Subject: nobody " + tok + b"\n"


def test_8bitmime_bytes_preserved(tsubame):
    tok = token().encode()
    high = bytes(range(0x80, 0x100))
    lines = [b"Subject: 8bit " + tok, b"Content-Type: text/plain; charset=utf-8",
             b"Content-Transfer-Encoding: 8bit", b"",
             "こんにちは、世界 — ça va?".encode("utf-8"), high, b"end"]
    r = send_raw(tsubame, stuff(lines), mail_params=" BODY=8BITMIME")
    assert qid_of(r), r
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == b"\n".join(lines) + b"\n"


def test_body_7bit_param(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test> BODY=7BIT", "250 2.1.0")
        s.expect("RSET", "250")
        r = s.cmd("MAIL FROM:<a@client.test> BODY=NONSENSE")
        # an unknown BODY value: 501 (Postfix's choice) or 555, always 5.5.4
        assert r.code in (501, 555) and r.enh() == "5.5.4", r


def test_smtputf8_sender_and_content(tsubame):
    tok = token().encode()
    sender = "pépé@exämple.test"
    lines = [("From: %s" % sender).encode("utf-8"), b"Subject: utf8 " + tok, b"",
             "本文：ユニコード".encode("utf-8")]
    r = send_raw(tsubame, stuff(lines), sender=sender, mail_params=" SMTPUTF8 BODY=8BITMIME")
    assert qid_of(r), r
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    rp, dt, _, rest = split_delivered(m)
    assert strip_brackets(rp) == sender.encode("utf-8")
    assert rest == b"\n".join(lines) + b"\n"


def test_utf8_addresses_need_smtputf8(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        # RFC 6531 3.7.4.1 suggests 553 5.6.7; docs/smtp-replies.md has 5.1.7 / 5.1.3 for bad addresses
        r = s.cmd("MAIL FROM:<pépé@exämple.test>".encode("utf-8"))
        assert r.code == 553 and r.enh() in ("5.1.7", "5.6.7"), r
        s.expect("MAIL FROM:<plain@client.test>", "250 2.1.0")
        r = s.cmd("RCPT TO:<ユーザー@example.test>".encode("utf-8"))
        assert r.code == 553 and r.enh() in ("5.1.3", "5.6.7"), r
        s.expect("RSET", "250")
        s.expect("MAIL FROM:<plain@client.test> SMTPUTF8", "250 2.1.0")
        # syntactically fine now; no such account
        s.expect("RCPT TO:<ユーザー@example.test>".encode("utf-8"), "550 5.1.1")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")


def test_received_header(tsubame):
    tok = token().encode()
    r = send_raw(tsubame, stuff([b"Subject: rcvd " + tok, b"", b"x"]), helo="helo.name.test")
    qid = qid_of(r)
    assert qid, r
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    _, _, rec, _ = split_delivered(m)
    assert b"helo.name.test" in rec, rec
    assert b"127.0.0.1" in rec, rec
    assert qid.encode() in rec, rec
    assert HOSTNAME.encode() in rec, rec
    # RFC 5322: a Received: field ends with "; date-time"
    assert re.search(rb";\s*\S.*\d{4}", rec), rec


def received_lines(n):
    return [("Received: from hop%d.test by hop%d.test; Thu, 1 Jan 2026 00:00:%02d +0000" % (i, i + 1, i % 60)).encode()
            for i in range(n)]


# The limit (max_received_headers = 50) counts every Received: header of the stored
# message, our own included, as Postfix's hopcount_limit does: 50 from the client
# plus ours is 51, a loop; 49 plus ours is 50, accepted and delivered.
def test_mail_loop_50_received_rejected(tsubame):
    tok = token().encode()
    r = send_raw(tsubame, stuff(received_lines(50) + [b"Subject: loop " + tok, b"", b"x"]))
    assert r.startswith("554 5.4.6"), r
    sent = token()
    tsubame.send("demo@example.test", "Subject: sentinel %s\r\n\r\nx\r\n" % sent)
    tsubame.wait_for_token("demo@example.test", sent)
    assert tsubame.find("demo@example.test", tok) == []


def test_mail_loop_49_received_accepted(tsubame):
    tok = token().encode()
    r = send_raw(tsubame, stuff(received_lines(49) + [b"Subject: loop49 " + tok, b"", b"x"]))
    assert qid_of(r), r
    tsubame.wait_for_token("demo@example.test", tok)


def test_received_in_body_not_counted(tsubame):
    tok = token().encode()
    r = send_raw(tsubame, stuff([b"Subject: rbody " + tok, b""] + received_lines(60)))
    assert qid_of(r), r
    tsubame.wait_for_token("demo@example.test", tok)


def test_crlf_stored_as_lf_bare_cr_kept(tsubame):
    tok = token().encode()
    r = send_raw(tsubame, b"Subject: cr " + tok + b"\r\n\r\na\rb\r\n.\r\n")
    assert qid_of(r), r
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == b"Subject: cr " + tok + b"\n\na\rb\n"
