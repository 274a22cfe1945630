"""SMTP smuggling (invariant 3): only CRLF.CRLF ends DATA, in both bare_newline modes."""

import time

import pytest

from tsubame_harness import Daemon, finish, qid_of, token

SEQUENCES = {
    "lf.lf": b"\n.\n",
    "lf.crlf": b"\n.\r\n",
    "cr.cr": b"\r.\r",
    "crlf.cr": b"\r\n.\r",
    "crlf.lf": b"\r\n.\n",
}


@pytest.fixture(scope="module", params=["normalize", "reject"])
def smug(base_dir, request):
    d = Daemon(base_dir, name="smuggle-" + request.param, params={"bare_newline": request.param})
    d.mode = request.param
    d.start()
    yield d
    finish(d)


@pytest.fixture
def site(smug):
    smug.mark()
    yield smug
    assert smug.running(), "tsubamed died:\n" + smug.tail()
    assert not smug.sanitizer_reports(since_mark=True)


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "split-writes"])
@pytest.mark.parametrize("name", list(SEQUENCES))
def test_smuggling(site, name, split):
    seq = SEQUENCES[name]
    tok = token().encode()
    head = b"From: a@client.test\r\nSubject: smuggle " + tok + b"\r\n\r\nreal body"
    smuggled = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n"
                b"Subject: smuggled " + tok + b"\r\n\r\nevil body\r\n")
    with site.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")
        s.expect("RCPT TO:<demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        if split:
            # the sequence straddles reads: "...body\r" | "\n." | "\r\nMAIL..." style cuts
            s.send(head + seq[:1])
            time.sleep(0.05)
            s.send(seq[1:2])
            time.sleep(0.05)
            s.send(seq[2:] + smuggled[:20])
            time.sleep(0.05)
            s.send(smuggled[20:] + b".\r\nQUIT\r\n")
        else:
            s.send(head + seq + smuggled + b".\r\nQUIT\r\n")
        r1 = s.reply()
        r2 = s.reply()
        bare_lf = b"\n" in seq.replace(b"\r\n", b"")
        if site.mode == "reject" and bare_lf:
            assert r1.startswith("550 5.5.2 Error: bare <LF> received"), (r1, r2)
        else:
            assert qid_of(r1) and r1.startswith("250 2.0.0"), (r1, r2)
        assert r2.startswith("221"), "an extra reply means the smuggled commands ran: %r %r" % (r1, r2)
        assert s.wait_closed(5)
        assert s.buf == b"", s.buf

    if site.mode == "reject" and bare_lf:
        sent = token()
        site.send("demo@example.test", "Subject: sentinel %s\r\n\r\nx\r\n" % sent)
        site.wait_for_token("demo@example.test", sent)
        assert site.find("demo@example.test", tok) == []
        return
    (m,) = site.wait_for_token("demo@example.test", tok)
    assert b"MAIL FROM:<evil@x>" in m and b"evil body" in m, m
    time.sleep(0.3)
    assert len(site.find("demo@example.test", tok)) == 1


def test_bare_lf_in_ordinary_message(site):
    """A message with bare LF line ends: normalized to LF lines or rejected, per mode."""
    tok = token().encode()
    with site.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<demo@example.test>", "250")
        s.expect("DATA", "354")
        s.send(b"Subject: barelf " + tok + b"\n\nline one\nline two\r\n.\r\n")
        r = s.reply()
        if site.mode == "reject":
            assert r.startswith("550 5.5.2"), r
        else:
            assert qid_of(r), r
        s.expect("NOOP", "250")
    if site.mode == "normalize":
        (m,) = site.wait_for_token("demo@example.test", tok)
        assert m.endswith(b"Subject: barelf " + tok + b"\n\nline one\nline two\n"), m[-200:]
