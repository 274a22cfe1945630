"""RFC 3030 CHUNKING: BDAT chunks, BDAT 0 LAST, pipelined BDAT, size limit on chunks."""

import pytest

from tsubame_harness import SessionClosed, qid_of, split_delivered, token


def chunk_ok(r, n):
    return r.startswith("250 2.0.0 Ok: %d octets received" % n)


def start_tx(s, rcpt="demo@example.test"):
    s.ehlo()
    s.expect("MAIL FROM:<bdat@client.test>", "250 2.1.0")
    s.expect("RCPT TO:<%s>" % rcpt, "250 2.1.5")


def test_bdat_several_chunks(tsubame):
    tok = token().encode()
    content = b"Subject: bdat " + tok + b"\r\n\r\n.no stuffing in BDAT\r\n.\r\nline\r\n"
    parts = [content[:7], content[7:30], content[30:]]
    with tsubame.session() as s:
        start_tx(s)
        for p in parts[:-1]:
            s.send(b"BDAT %d\r\n" % len(p) + p)
            r = s.reply()
            assert chunk_ok(r, len(p)), r
        s.send(b"BDAT %d LAST\r\n" % len(parts[-1]) + parts[-1])
        assert qid_of(s.reply())
        s.expect("NOOP", "250")
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    # BDAT content is taken literally: the dots stay, CRLF becomes LF
    assert split_delivered(m)[3] == content.replace(b"\r\n", b"\n")


def test_bdat_zero_last(tsubame):
    tok = token().encode()
    content = b"Subject: bdat0 " + tok + b"\r\n\r\nbody\r\n"
    with tsubame.session() as s:
        start_tx(s)
        s.send(b"BDAT %d\r\n" % len(content) + content)
        assert chunk_ok(s.reply(), len(content))
        s.send(b"BDAT 0 LAST\r\n")
        assert qid_of(s.reply())
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == content.replace(b"\r\n", b"\n")


def test_bdat_pipelined(tsubame):
    tok = token().encode()
    c1 = b"Subject: bdatpipe " + tok + b"\r\n"
    c2 = b"\r\nMAIL FROM:<not@a.command>\r\n"
    c3 = b"QUIT\r\nend\r\n"
    with tsubame.session() as s:
        s.ehlo()
        s.send(b"MAIL FROM:<bdat@client.test>\r\nRCPT TO:<demo@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
               + b"BDAT %d\r\n" % len(c1) + c1 + b"BDAT %d\r\n" % len(c2) + c2
               + b"BDAT %d LAST\r\n" % len(c3) + c3 + b"NOOP\r\n")
        r = s.replies(7)
        assert r[0].startswith("250 2.1.0") and r[1].startswith("250 2.1.5") and r[2].startswith("550 5.1.1"), r
        assert chunk_ok(r[3], len(c1)) and chunk_ok(r[4], len(c2)), r
        assert qid_of(r[5]), r
        assert r[6].startswith("250 2.0.0"), r
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == (c1 + c2 + c3).replace(b"\r\n", b"\n")


def test_bdat_8bit_content(tsubame):
    """BDAT carries raw bytes: 8-bit bytes and a '.' line come through untouched."""
    tok = token().encode()
    content = b"Subject: bdatbin " + tok + b"\r\n\r\n" + bytes(range(0x80, 0x100)) + b"\r\n.\r\n"
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<bdat@client.test> BODY=8BITMIME", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.send(b"BDAT %d LAST\r\n" % len(content) + content)
        assert qid_of(s.reply())
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    assert split_delivered(m)[3] == content.replace(b"\r\n", b"\n")


def test_bdat_over_max_message_size(tsubame):
    """max_message_size is 200000 in the harness; the chunk bytes are consumed, the session stays in sync."""
    tok = token().encode()
    big = b"Subject: bdatbig " + tok + b"\r\n\r\n" + (b"y" * 998 + b"\r\n") * 150  # ~150 KB
    with tsubame.session(timeout=30) as s:
        start_tx(s)
        s.send(b"BDAT %d\r\n" % len(big) + big)
        assert chunk_ok(s.reply(), len(big))
        s.send(b"BDAT %d LAST\r\n" % len(big) + big)
        r = s.reply()
        assert r.startswith("552 5.3.4"), r
        s.expect("NOOP", "250 2.0.0")
        # a fresh transaction in the same session works
        s.expect("MAIL FROM:<bdat@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        small = b"Subject: after " + tok + b"\r\n\r\nok\r\n"
        s.send(b"BDAT %d LAST\r\n" % len(small) + small)
        assert qid_of(s.reply())
    tsubame.wait_for_token("demo@example.test", b"after " + tok)
    assert tsubame.find("demo@example.test", b"bdatbig " + tok) == []


def test_bdat_single_chunk_over_limit_with_more_chunks(tsubame):
    big = b"z" * 250000
    with tsubame.session(timeout=30) as s:
        start_tx(s)
        # the first chunk alone is over the limit: the refusal may come at that chunk or at
        # LAST, but each BDAT gets exactly one reply and nothing is queued
        s.send(b"BDAT %d\r\n" % len(big) + big + b"BDAT 10 LAST\r\n" + b"0123456789" + b"NOOP\r\n")
        r = s.replies(3)
        assert any(x.startswith("552 5.3.4") for x in r[:2]), r
        assert not qid_of(r[0]) and not qid_of(r[1]), r
        assert r[1].code >= 500, r
        assert r[2].startswith("250 2.0.0"), r


def test_bdat_without_transaction_discards_chunk(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        # the chunk is "QUIT\r\n": if it were read as a command the reply would be 221
        s.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
        r = s.replies(2)
        assert r[0].startswith("503 5.5.1"), r
        assert r[1].startswith("250 2.0.0"), r
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.send(b"BDAT 6\r\nQUIT\r\nNOOP\r\n")
        r = s.replies(2)
        assert r[0].startswith("503 5.5.1"), r
        assert r[1].startswith("250 2.0.0"), r


def test_bdat_after_rejected_recipients_discards_chunk(tsubame):
    """The usual pipelined case: every RCPT was refused, the BDAT chunk must still be skipped."""
    with tsubame.session() as s:
        s.ehlo()
        s.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<nobody@example.test>\r\n"
               b"BDAT 43 LAST\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nQUIT\r\n\r\nNOOP\r\n")
        r = s.replies(4)
        assert [x.code for x in r] == [250, 550, 503, 250], r
        assert r[3].startswith("250 2.0.0 Ok"), r


def test_bdat_then_data_refused(tsubame):
    with tsubame.session() as s:
        start_tx(s)
        s.send(b"BDAT 5\r\nHello")
        assert chunk_ok(s.reply(), 5)
        r = s.cmd("DATA")
        assert r.code == 503, r
        s.send(b"BDAT 2 LAST\r\n\r\n")
        r = s.reply()
        assert qid_of(r) or r.code >= 500, r
        s.expect("NOOP", "250")


@pytest.mark.parametrize("arg", ["", " abc", " 5 FIRST", " -1", " 99999999999999999999999"])
def test_bdat_bad_argument(tsubame, arg):
    """501 5.5.4; the chunk size is unknown so the server may then close, but it always replies."""
    with tsubame.session() as s:
        start_tx(s)
        r = s.cmd("BDAT" + arg)
        assert r.startswith("501 5.5.4"), r
        try:
            r = s.cmd("NOOP")
        except (SessionClosed, ConnectionResetError, BrokenPipeError):
            return
        assert r.startswith("250") or r.startswith("421"), r
