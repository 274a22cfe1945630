"""Recipients: unknown users, no open relay, domain case, host aliases, aliases, external targets."""

import time

import pytest

from tsubame_harness import qid_of, split_delivered, strip_brackets, token


def rcpt_reply(d, addr, mail="MAIL FROM:<a@client.test>"):
    with d.session() as s:
        s.ehlo()
        s.expect(mail, "250 2.1.0")
        r = s.cmd(b"RCPT TO:" + (addr.encode("utf-8") if isinstance(addr, str) else addr))
        s.expect("NOOP", "250")
        return r


def deliver_to(d, rcpt, tok, sender="a@client.test"):
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<%s>" % sender, "250 2.1.0")
        s.expect("RCPT TO:<%s>" % rcpt, "250 2.1.5")
        s.expect("DATA", "354")
        s.send(("Subject: to %s %s\r\n\r\nx\r\n.\r\n" % (rcpt, tok)).encode())
        r = s.reply()
        assert qid_of(r), r
        return qid_of(r)


def test_unknown_user(tsubame):
    r = rcpt_reply(tsubame, "<nobody@example.test>")
    assert r.startswith("550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown"), r


def test_postmaster_only_when_created(tsubame):
    r = rcpt_reply(tsubame, "<postmaster@example.test>")
    assert r.startswith("550 5.1.1"), r


def test_non_local_recipient(tsubame):
    r = rcpt_reply(tsubame, "<victim@elsewhere.test>")
    assert r.startswith("550 5.7.1 <victim@elsewhere.test>: Relaying denied"), r


@pytest.mark.parametrize("addr", [
    "<victim%elsewhere.test@example.test>",        # percent hack
    "<elsewhere.test!victim@example.test>",        # bang path
    "<elsewhere.test!victim>",
    '<"victim@elsewhere.test"@example.test>',      # quoted local part with @
    "<@example.test:victim@elsewhere.test>",       # source route: the mailbox is elsewhere
    "<@example.test,@mail.other.test:victim@elsewhere.test>",
    "<victim@elsewhere.test.>",                    # trailing dot
    "<victim@elsewhere.test@example.test>",
    "<victim@[127.0.0.1]>",                        # address literal
    "<victim@[192.0.2.1]>",
    "<VICTIM@ELSEWHERE.TEST>",                     # upper-case domain
    "<Victim@ElseWhere.Test.>",
    "<victim@[IPv6:::1]>",
    "<victim@example.test.elsewhere.test>",        # local domain as a prefix
    "<victim@xexample.test>",                      # local domain as a suffix
    "<victim@localhost>",
    "<victim>",
    "victim@elsewhere.test",
], ids=lambda a: a.replace("<", "").replace(">", ""))
def test_no_open_relay(tsubame, addr):
    r = rcpt_reply(tsubame, addr)
    assert r.code >= 500 and r.code < 600, (addr, r)
    assert r.enh() and r.enh().startswith("5."), (addr, r)
    out = tsubame.ctl("queue", "list").out
    assert "victim" not in out.lower(), out


def test_source_route_to_local_mailbox_is_local(tsubame):
    # RFC 5321 appendix C: the route is ignored, the mailbox is demo@example.test
    tok = token()
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<@elsewhere.test:demo@example.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(("Subject: route %s\r\n\r\nx\r\n.\r\n" % tok).encode())
        assert qid_of(s.reply())
    tsubame.wait_for_token("demo@example.test", tok)


@pytest.mark.parametrize("addr", ["demo@EXAMPLE.TEST", "DEMO@Example.Test", "Demo@example.test"])
def test_upper_case_local_domain_accepted(tsubame, addr):
    tok = token()
    deliver_to(tsubame, addr, tok)
    tsubame.wait_for_token("demo@example.test", tok)


def test_host_alias_delivers_to_canonical_domain(tsubame):
    tok = token()
    deliver_to(tsubame, "carol@mail.other.test", tok)
    (m,) = tsubame.wait_for_token("carol@other.test", tok)
    dt = strip_brackets(split_delivered(m)[1]).lower()
    assert dt in (b"carol@other.test", b"carol@mail.other.test"), dt


def test_host_alias_unknown_user(make_daemon):
    d = make_daemon(aliases="")  # no catch-all for other.test here
    r = rcpt_reply(d, "<nobody@mail.other.test>")
    assert r.startswith("550 5.1.1"), r


@pytest.mark.parametrize("alias,mailbox,present", [
    ("info@example.test", "demo@example.test", "info@example.test"),        # same domain: keep
    ("samedom@example.test", "bob@example.test", "samedom@example.test"),   # same domain: keep
    ("sales@example.test", "carol@other.test", "carol@other.test"),         # other domain: rewrite
    ("keep@example.test", "carol@other.test", "keep@example.test"),         # ,0 forces keep
    ("rw@example.test", "bob@example.test", "bob@example.test"),            # ,1 forces rewrite
    ("fw-carol@example.test", "carol@other.test", "carol@other.test"),      # wildcard with substitution
    ("anything@other.test", "carol@other.test", "anything@other.test"),     # catch-all, same domain
    ("whoever@mail.other.test", "carol@other.test", "whoever@other.test|whoever@mail.other.test"),
])
def test_alias_delivery(tsubame, alias, mailbox, present):
    tok = token()
    deliver_to(tsubame, alias, tok)
    (m,) = tsubame.wait_for_token(mailbox, tok)
    dt = strip_brackets(split_delivered(m)[1])
    assert dt.lower().decode() in present.split("|"), (alias, dt)


def test_catch_all_does_not_steal_from_accounts(tsubame):
    tok = token()
    deliver_to(tsubame, "carol@other.test", tok)
    (m,) = tsubame.wait_for_token("carol@other.test", tok)
    assert strip_brackets(split_delivered(m)[1]) == b"carol@other.test"


def test_wildcard_alias_without_account_rejected(tsubame):
    # fw-nobody@example.test -> nobody@other.test, which the catch-all takes: accepted.
    # A name matching no alias and no account in example.test is unknown.
    r = rcpt_reply(tsubame, "<fwx-nobody@example.test>")
    assert r.startswith("550 5.1.1"), r


def test_external_alias_target_stays_queued(tsubame):
    tok = token()
    qid = deliver_to(tsubame, "ext@example.test", tok)
    # give the queue manager time to act on it, then it must still be queued
    time.sleep(1.0)
    cp = tsubame.ctl("queue", "list")
    assert qid in cp.out, cp.out
    cp = tsubame.ctl("queue", "show", qid)
    assert "someone@remote.invalid" in cp.out, cp.out
    cp = tsubame.ctl("queue", "show", qid, "--body")
    assert tok in cp.out, cp.out
    files = tsubame.queue_files("active") + tsubame.queue_files("deferred")
    assert any(qid in open(f, "rb").read().decode("utf-8", "replace") or qid in f for f in files), files
    cp = tsubame.ctl("queue", "delete", qid)
    cp = tsubame.ctl("queue", "list")
    assert qid not in cp.out, cp.out
    cp = tsubame.ctl("queue", "show", qid, check=False)
    assert cp.returncode == 1, (cp.returncode, cp.out, cp.err)


def test_mixed_local_and_external_alias(tsubame):
    """One message to a local user and to an external alias: local copy delivered, rest queued."""
    tok = token()
    with tsubame.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<demo@example.test>", "250")
        s.expect("RCPT TO:<ext@example.test>", "250")
        s.expect("DATA", "354")
        s.send(("Subject: mixed %s\r\n\r\nx\r\n.\r\n" % tok).encode())
        qid = qid_of(s.reply())
        assert qid
    tsubame.wait_for_token("demo@example.test", tok)
    time.sleep(0.5)
    assert qid in tsubame.ctl("queue", "list").out
    tsubame.ctl("queue", "delete", qid)


def test_queue_ctl_errors(tsubame):
    assert tsubame.ctl("queue", "show", "NOSUCHQID", check=False).returncode == 1
    assert tsubame.ctl("queue", "delete", "NOSUCHQID", check=False).returncode == 1
    assert tsubame.ctl("queue", "frobnicate", check=False).returncode == 2
