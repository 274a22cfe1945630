"""RFC 2920 pipelined command groups: replies come back complete and in order."""

from tsubame_harness import qid_of, split_delivered, strip_brackets, token


def test_pipelined_group_all_good(tsubame):
    tok = token()
    with tsubame.session() as s:
        s.ehlo()
        s.send(b"MAIL FROM:<p@client.test>\r\n"
               b"RCPT TO:<demo@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        r = s.replies(4)
        assert [x.code for x in r] == [250, 250, 250, 354], r
        assert r[0].startswith("250 2.1.0") and r[1].startswith("250 2.1.5") and r[2].startswith("250 2.1.5")
        s.send(("Subject: pipelined %s\r\n\r\nbody\r\n.\r\n" % tok).encode())
        assert qid_of(s.reply())
        s.expect("QUIT", "221")
    tsubame.wait_for_token("demo@example.test", tok)
    tsubame.wait_for_token("bob@example.test", tok)


def test_pipelined_group_mixed_recipients(tsubame):
    tok = token()
    with tsubame.session() as s:
        s.ehlo()
        s.send(b"MAIL FROM:<p@client.test>\r\n"
               b"RCPT TO:<demo@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<victim@elsewhere.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"RCPT TO:<bad address>\r\n"
               b"DATA\r\n")
        r = s.replies(7)
        got = ["%d %s" % (x.code, x.enh()) for x in r]
        assert got == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "550 5.7.1", "250 2.1.5", "553 5.1.3", "354 None"], r
        assert "nobody@example.test" in r[2].text and "victim@elsewhere.test" in r[3].text
        s.send(("Subject: mixed %s\r\n\r\nbody\r\n.\r\n" % tok).encode())
        assert qid_of(s.reply())
        s.expect("NOOP", "250")
    (m,) = tsubame.wait_for_token("demo@example.test", tok)
    (m2,) = tsubame.wait_for_token("bob@example.test", tok)
    assert strip_brackets(split_delivered(m2)[1]) == b"bob@example.test"


def test_pipelined_group_no_valid_recipient(tsubame):
    with tsubame.session() as s:
        s.ehlo()
        # The client sends DATA blindly; it gets 503 and must not send content.
        s.send(b"MAIL FROM:<p@client.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"DATA\r\n")
        r = s.replies(3)
        assert [x.startswith(p) for x, p in zip(r, ("250 2.1.0", "550 5.1.1", "503 5.5.1"))] == [True] * 3, r
        s.expect("RSET", "250 2.0.0")
        s.expect("NOOP", "250 2.0.0")


def test_pipelined_whole_sessions_back_to_back(tsubame):
    """Several complete transactions and the QUIT, each group after the 354/250 it waits for."""
    toks = [token() for _ in range(3)]
    with tsubame.session() as s:
        s.send(b"EHLO client.example\r\n")
        assert s.reply().code == 250
        for tok in toks:
            s.send(b"RSET\r\nMAIL FROM:<p@client.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n")
            r = s.replies(4)
            assert [x.code for x in r] == [250, 250, 250, 354], r
            s.send(("Subject: b2b %s\r\n\r\nx\r\n.\r\n" % tok).encode())
            assert qid_of(s.reply())
        s.send(b"NOOP\r\nQUIT\r\n")
        r = s.replies(2)
        assert [x.code for x in r] == [250, 221], r
    for tok in toks:
        tsubame.wait_for_token("demo@example.test", tok)


def test_pipelined_message_then_commands(tsubame):
    """The data end and the next commands in one write: the commands are not lost (Postfix-style)."""
    tok = token()
    with tsubame.session() as s:
        s.ehlo()
        s.send(b"MAIL FROM:<p@client.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n")
        assert [x.code for x in s.replies(3)] == [250, 250, 354]
        s.send(("Subject: tail %s\r\n\r\nx\r\n.\r\nMAIL FROM:<q@client.test>\r\nRCPT TO:<bob@example.test>\r\nRSET\r\nNOOP\r\n" % tok).encode())
        r = s.replies(5)
        assert qid_of(r[0]), r
        assert [x.code for x in r[1:]] == [250, 250, 250, 250], r
    tsubame.wait_for_token("demo@example.test", tok)


def test_data_before_354_is_a_sync_error(tsubame):
    """Content sent in the same write as DATA (before 354): 554 5.5.0 and close, nothing delivered."""
    tok = token()
    with tsubame.session() as s:
        s.ehlo()
        s.send(("MAIL FROM:<p@client.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n"
                "Subject: early %s\r\n\r\nx\r\n.\r\n" % tok).encode())
        r = s.replies(3)
        assert [x.code for x in r[:2]] == [250, 250], r
        if r[2].code == 354:
            nxt = s.reply()
            assert nxt.startswith("554 5.5.0"), nxt
        else:
            assert r[2].startswith("554 5.5.0"), r
        assert s.wait_closed(5)
    # a sentinel proves delivery has caught up
    sent = token()
    tsubame.send("demo@example.test", "Subject: sentinel %s\r\n\r\nx\r\n" % sent)
    tsubame.wait_for_token("demo@example.test", sent)
    assert tsubame.find("demo@example.test", tok) == []
