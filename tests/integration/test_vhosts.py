"""Virtual hosts (L1, seed 004): one daemon on 127.0.0.1, 127.0.0.2 and 127.0.0.3, same port.

  example.test, other.test  no ip=: served on every address ("virtual hosts without an IP")
  two.test                  ip=127.0.0.2 hostname=mx.two.test, max_accounts=2
  three.test                ip=127.0.0.3 hostname=mx.three.test, the per-domain defaults
                            mailbox_limit=20000 max_messages=3 max_message_size=5000

127.0.0.x addresses need no set-up on Linux: the whole 127.0.0.0/8 is on the loopback.
Replies checked here are listed in docs/smtp-replies.md; the how-to is docs/virtual-hosts.md.
"""

import os
import re
import time

import pytest

from tsubame_harness import HOSTNAME, Daemon, Session, b64, finish, free_port, qid_of, split_delivered, \
    strip_brackets, token

MAIN, TWO, THREE = "127.0.0.1", "127.0.0.2", "127.0.0.3"

DOMAINS = (
    "example.test aliases=mail.example.test\n"
    "other.test\n"
    "two.test aliases=mail.two.test ip=127.0.0.2 hostname=mx.two.test max_accounts=2\n"
    "three.test aliases=mail.three.test ip=127.0.0.3 hostname=mx.three.test"
    " mailbox_limit=20000 max_messages=3 max_message_size=5000\n"
)

ACCOUNTS = [
    ("demo@example.test", "demo-main", []),
    ("sender@other.test", "sender-pass", ["-a", "0"]),   # may send without AUTH: receives the bounces
    ("anna@two.test", "anna-pass", []),
    ("demo@three.test", "demo-three", []),
    ("full@three.test", "pw", []),
    ("many@three.test", "pw", []),
    ("big@three.test", "pw", ["-l", "100000"]),          # its own quota beats the domain's
]

ALIASES = "postmaster@three.test demo@three.test\n"


@pytest.fixture(scope="module")
def vhost(base_dir):
    port = free_port()
    d = Daemon(base_dir, name="vhosts", port=port, domains=DOMAINS, accounts=ACCOUNTS, aliases=ALIASES,
               params={"listen": "%s:%d %s:%d %s:%d" % (MAIN, port, TWO, port, THREE, port),
                       "auth_plaintext": "yes", "auth_failure_delay": "0", "auth_max_failures": "10",
                       "auth_max_failures_per_ip": "1000", "sender_trust": "auth_id=envelope",
                       "max_message_size": "200000"})
    d.start()
    yield d
    finish(d)


@pytest.fixture
def v(vhost):
    vhost.mark()
    yield vhost
    assert vhost.running(), vhost.tail()
    assert not vhost.sanitizer_reports(since_mark=True)


def sess(d, host):
    return Session(d.port, host=host)


def rcpt(d, host, addr, mail="MAIL FROM:<a@client.test>", auth=None):
    with sess(d, host) as s:
        s.ehlo()
        if auth:
            r = s.auth_plain(*auth)
            assert r.code == 235, r
        s.expect(mail, "250 2.1.0")
        return s.cmd("RCPT TO:<%s>" % addr)


def send(d, host, rcpts, body, sender="sender@other.test", mail_opts=""):
    with sess(d, host) as s:
        s.ehlo()
        s.expect("MAIL FROM:<%s>%s" % (sender, mail_opts), "250 2.1.0")
        for r in rcpts:
            s.expect("RCPT TO:<%s>" % r, "250 2.1.5")
        s.expect("DATA", "354")
        s.send(body.encode() + b".\r\n")
        return s.reply()


def fill(d, user, nbytes):
    """One more message file of nbytes in user's Maildir/cur (d.fill_mailbox names files by the second)."""
    p = d.fill_mailbox(user, nbytes)
    os.rename(p, p.replace(".filler,", ".filler%s," % token()))


def empty(d, user):
    for f in d.message_files(user):
        os.unlink(f)
    d.forget_maildirsize(user)    # as a Maildir++ mail reader would account for the deletions


def message(tok, size=0):
    body = "Subject: %s\r\n\r\n" % tok
    while len(body) < size:
        body += "x" * 70 + "\r\n"
    return body


# ---------------------------------------------------------------------------
# listeners and greeting names


@pytest.mark.parametrize("host,name", [(MAIN, HOSTNAME), (TWO, "mx.two.test"), (THREE, "mx.three.test")])
def test_greeting_and_ehlo_name_per_address(v, host, name):
    with sess(v, host) as s:
        assert s.greeting.startswith("220 %s ESMTP" % name), s.greeting
        assert s.ehlo().first == name
        assert s.expect("HELO client.example", "250").first == name


def test_received_header_names_the_virtual_host(v):
    tok = token()
    r = send(v, THREE, ["demo@three.test"], message(tok))
    assert qid_of(r), r
    (m,) = v.wait_for_token("demo@three.test", tok)
    received = split_delivered(m)[2]
    assert b"by mx.three.test (Tsubame)" in received, received


# ---------------------------------------------------------------------------
# domains bound to an address


def test_bound_domain_accepted_only_on_its_address(v):
    for host in (MAIN, TWO):
        for addr in ("demo@three.test", "demo@mail.three.test", "nobody@three.test"):
            r = rcpt(v, host, addr)
            assert r.startswith("550 5.7.1 <%s>: Recipient address rejected: domain not served on this address"
                                % addr), (host, r)
    assert rcpt(v, THREE, "demo@three.test").startswith("250 2.1.5")
    assert rcpt(v, THREE, "demo@mail.three.test").startswith("250 2.1.5")
    assert rcpt(v, THREE, "nobody@three.test").startswith("550 5.1.1")
    assert rcpt(v, TWO, "anna@two.test").startswith("250 2.1.5")
    assert rcpt(v, THREE, "anna@two.test").startswith("550 5.7.1")
    assert "reason=not_served_here" in v.log("main")


def test_shared_domains_on_every_address(v):
    for host in (MAIN, TWO, THREE):
        assert rcpt(v, host, "demo@example.test").startswith("250 2.1.5"), host
        assert rcpt(v, host, "sender@other.test").startswith("250 2.1.5"), host


def test_relay_client_reaches_a_bound_domain_from_any_address(v):
    # An authenticated user may send to every local domain; it is delivered here, not relayed.
    tok = token()
    with sess(v, MAIN) as s:
        s.ehlo()
        s.expect("AUTH PLAIN " + b64("\0demo@example.test\0demo-main"), "235 2.7.0")
        s.expect("MAIL FROM:<demo@example.test>", "250 2.1.0")
        s.expect("RCPT TO:<anna@two.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send(message(tok).encode() + b".\r\n")
        assert qid_of(s.reply())
    v.wait_for_token("anna@two.test", tok)


def test_bare_postmaster_is_the_virtual_hosts(v):
    # RFC 5321 4.5.1 <Postmaster>: on .3 it is postmaster@three.test (an alias of demo@three.test).
    assert rcpt(v, THREE, "Postmaster").startswith("250 2.1.5")
    assert rcpt(v, MAIN, "Postmaster").startswith("550 5.1.1")   # postmaster@example.test does not exist


# ---------------------------------------------------------------------------
# bare user names: VRFY and AUTH


@pytest.mark.parametrize("host,user,reply", [
    (MAIN, "demo", "250 2.1.5 <demo@example.test>"),
    (THREE, "demo", "250 2.1.5 <demo@three.test>"),
    (TWO, "anna", "250 2.1.5 <anna@two.test>"),
    (THREE, "anna", "550 5.1.1 <anna@three.test>"),
    (MAIN, "anna", "550 5.1.1 <anna@example.test>"),
    (TWO, "demo@three.test", "550 5.7.1 <demo@three.test>: Recipient address rejected: domain not served"),
    (TWO, "anna@mail.two.test", "250 2.1.5 <anna@mail.two.test>"),
    (MAIN, "demo@mail.example.test", "250 2.1.5"),
])
def test_vrfy_per_address(v, host, user, reply):
    with sess(v, host) as s:
        s.ehlo()
        s.expect("VRFY " + user, reply)


@pytest.mark.parametrize("host,user,password,ok", [
    (MAIN, "demo", "demo-main", True),
    (THREE, "demo", "demo-three", True),
    (THREE, "demo", "demo-main", False),      # "demo" on .3 is demo@three.test
    (MAIN, "demo", "demo-three", False),
    (TWO, "anna", "anna-pass", True),
    (MAIN, "anna", "anna-pass", False),       # no anna@example.test: outside .2 she logs in in full
    (MAIN, "anna@two.test", "anna-pass", True),
    (MAIN, "anna@mail.two.test", "anna-pass", True),
])
def test_auth_bare_user_per_address(v, host, user, password, ok):
    for mech in ("PLAIN", "LOGIN"):
        with sess(v, host) as s:
            s.ehlo()
            r = s.auth_plain(user, password) if mech == "PLAIN" else s.auth_login(user, password)
            assert r.code == (235 if ok else 535), (host, user, mech, r)


def test_auth_bare_user_sender_trust(v):
    # sender_trust = auth_id=envelope: "anna" on .2 is anna@two.test, and a host alias is the same domain.
    with sess(v, TWO) as s:
        s.ehlo()
        s.expect("AUTH PLAIN " + b64("\0anna\0anna-pass"), "235")
        s.expect("MAIL FROM:<anna@two.test>", "250 2.1.0")
        s.expect("RSET", "250")
        s.expect("MAIL FROM:<anna@mail.two.test>", "250 2.1.0")
        s.expect("RSET", "250")
        s.expect("MAIL FROM:<demo@three.test>", "553 5.7.1")
    assert "user=anna@two.test" in v.log("main")


def test_cram_md5_challenge_names_the_virtual_host(v):
    import base64
    with sess(v, THREE) as s:
        s.ehlo()
        r = s.cmd("AUTH CRAM-MD5")
        assert r.code == 334, r
        assert base64.b64decode(r.first).decode().endswith("@mx.three.test>")
        s.expect("*", "501")


# ---------------------------------------------------------------------------
# host aliases everywhere


def test_host_alias_lands_in_the_domains_maildir(v):
    tok = token()
    send(v, TWO, ["anna@mail.two.test"], message(tok))
    (m,) = v.wait_for_token("anna@two.test", tok)
    assert v.message_files("anna@two.test")[0].startswith(os.path.join(v.mail, "two.test", "anna", "Maildir"))
    assert not os.path.exists(os.path.join(v.mail, "mail.two.test"))


def test_host_alias_sender_is_a_local_account(v):
    # Security level 3: a local sender with the auth flag must log in, under its host alias too.
    for sender in ("demo@example.test", "demo@mail.example.test", "DEMO@Mail.Example.Test"):
        with sess(v, MAIN) as s:
            s.ehlo()
            s.expect("MAIL FROM:<%s>" % sender, "530 5.7.0")


# ---------------------------------------------------------------------------
# per-domain defaults (seed 004: max mailbox size, max messages, max single message, max users)


def test_domain_mailbox_limit_at_rcpt(v):
    fill(v, "full@three.test", 21000)
    try:
        r = rcpt(v, THREE, "full@three.test")
        assert r.startswith("552 5.2.2 <full@three.test>: Mailbox full"), r
    finally:
        empty(v, "full@three.test")
    # big@ has its own limit (100000): the account's setting beats the domain default
    fill(v, "big@three.test", 21000)
    assert rcpt(v, THREE, "big@three.test").startswith("250 2.1.5")


def test_domain_mailbox_limit_with_declared_size(v):
    r = rcpt(v, THREE, "demo@three.test", mail="MAIL FROM:<a@client.test> SIZE=4900")
    assert r.startswith("250 2.1.5"), r
    fill(v, "many@three.test", 18000)
    try:
        r = rcpt(v, THREE, "many@three.test", mail="MAIL FROM:<a@client.test> SIZE=4000")
        assert r.startswith("552 5.2.2 <many@three.test>: Mailbox full"), r
    finally:
        empty(v, "many@three.test")


def test_domain_max_messages_at_rcpt(v):
    for _ in range(3):
        fill(v, "many@three.test", 100)
    try:
        assert len(v.message_files("many@three.test")) == 3
        r = rcpt(v, THREE, "many@three.test")
        assert r.startswith("552 5.2.2 <many@three.test>: Mailbox full"), r
    finally:
        empty(v, "many@three.test")


def _bounce_for(v, tok, status):
    """The bounce to sender@other.test about the message tok, with the given Status:."""
    found = v.wait_for_token("sender@other.test", tok, timeout=15)
    b = found[-1]
    assert b"Status: " + status.encode() in b, b[:3000]
    return b


def test_domain_mailbox_limit_at_delivery_bounces(v):
    # No SIZE=: 17000 of 20000 used passes RCPT; 17000 + 4000 does not fit at delivery.
    tok = token()
    fill(v, "full@three.test", 17000)
    try:
        with sess(v, THREE) as s:
            s.ehlo()
            s.expect("MAIL FROM:<sender@other.test>", "250 2.1.0")
            s.expect("RCPT TO:<full@three.test>", "250 2.1.5")
            s.expect("DATA", "354")
            s.send(message(tok, 4000).encode() + b".\r\n")
            assert qid_of(s.reply())
        b = _bounce_for(v, tok, "5.2.2")
        assert b"full@three.test" in b
        assert v.find("full@three.test", tok) == []
    finally:
        empty(v, "full@three.test")


def test_domain_max_messages_at_delivery_bounces(v):
    # Accepted at RCPT (2 of 3), full (3 of 3) when delivery comes: returned to the sender.
    tok = token()
    fill(v, "many@three.test", 100)
    fill(v, "many@three.test", 100)
    try:
        with sess(v, THREE) as s:
            s.ehlo()
            s.expect("MAIL FROM:<sender@other.test>", "250 2.1.0")
            s.expect("RCPT TO:<many@three.test>", "250 2.1.5")
            fill(v, "many@three.test", 100)
            s.expect("DATA", "354")
            s.send(message(tok).encode() + b".\r\n")
            assert qid_of(s.reply())
        _bounce_for(v, tok, "5.2.2")
        assert len(v.message_files("many@three.test")) == 3
    finally:
        empty(v, "many@three.test")


def test_domain_max_message_size_at_rcpt(v):
    r = rcpt(v, THREE, "demo@three.test", mail="MAIL FROM:<a@client.test> SIZE=6000")
    assert r.startswith("552 5.3.4 <demo@three.test>: Message size exceeds fixed limit"), r
    # other domains keep the global limit (200000)
    assert rcpt(v, THREE, "demo@example.test", mail="MAIL FROM:<a@client.test> SIZE=6000").startswith("250")


def test_domain_max_message_size_at_end_of_data(v):
    # No SIZE=: every recipient is in three.test, so the whole message is refused after the data.
    tok = token()
    r = send(v, THREE, ["demo@three.test"], message(tok, 6000))
    assert r.startswith("552 5.3.4 Message size exceeds fixed limit"), r
    assert re.search(r"event=reject reason=size .*size=60", v.log("main")), v.log("main")[-2000:]
    # A small one still passes, and the session goes on.
    tok2 = token()
    assert qid_of(send(v, THREE, ["demo@three.test"], message(tok2, 1000)))
    v.wait_for_token("demo@three.test", tok2)
    assert v.find("demo@three.test", tok) == []


def test_domain_max_message_size_mixed_recipients(v):
    # Only three.test is over its limit: accepted, delivered to example.test, bounced for three.test.
    tok = token()
    r = send(v, THREE, ["demo@example.test", "demo@three.test"], message(tok, 6000))
    assert qid_of(r), r
    v.wait_for_token("demo@example.test", tok)
    b = _bounce_for(v, tok, "5.3.4")
    assert b"demo@three.test" in b
    assert v.find("demo@three.test", tok) == []


def test_domain_max_accounts(v):
    # two.test has max_accounts=2 and one account (anna)
    v.ctl("account", "add", "bert@two.test", "-p", "pw")
    cp = v.ctl("account", "add", "carl@two.test", "-p", "pw", check=False)
    assert cp.returncode == 1
    assert "domain two.test is full (max_accounts=2, 2 accounts)" in cp.err, cp.err
    imp = "dora\tpw\tDora\ttwo.test\t\t1\t0\t0\nanna\tnew-pw\tAnna\tmail.two.test\t\t1\t0\t0\n"
    cp = v.ctl("account", "import", "-", input=imp.encode(), check=False)
    assert cp.returncode == 1
    assert "stdin:1: domain two.test is full (max_accounts=2)" in cp.err, cp.err
    assert "imported 1 account" in cp.out          # replacing anna (via the host alias) is not a new account
    v.ctl("domain", "set", "two.test", "--max-accounts", "3")
    v.ctl("account", "add", "carl@two.test", "-p", "pw")
    v.ctl("domain", "set", "two.test", "--max-accounts", "2")
    listing = v.ctl("domain", "list").out
    assert re.search(r"^two\.test aliases=mail\.two\.test max_accounts=2 .* ip=127\.0\.0\.2 hostname=mx\.two\.test "
                     r"accounts=3$", listing, re.M), listing
    for name in ("bert", "carl"):
        v.ctl("account", "del", "%s@two.test" % name)
    v.ctl("account", "passwd", "anna@two.test", "-p", "anna-pass")


def test_domain_set_reaches_the_running_daemon(v):
    v.ctl("domain", "set", "three.test", "--hostname", "mx3.three.test")
    try:
        deadline = time.monotonic() + 10
        while True:
            with sess(v, THREE) as s:
                if s.greeting.startswith("220 mx3.three.test ") or time.monotonic() > deadline:
                    break
            time.sleep(0.1)
        assert s.greeting.startswith("220 mx3.three.test "), s.greeting
    finally:
        v.ctl("domain", "set", "three.test", "--hostname", "mx.three.test")


# ---------------------------------------------------------------------------
# tsubamectl and tsubamed -n


def test_ctl_domain_add_and_set(make_daemon):
    d = make_daemon(start=False, aliases="", accounts=[],
                    params={"listen": "127.0.0.1:%d 127.0.0.2:%d" % (free_port(), free_port())})
    out = d.ctl("domain", "add", "vh.test", "-a", "mail.vh.test", "--ip", "127.0.0.2", "--hostname", "MX.vh.test",
                "--max-accounts", "5", "--mailbox-limit", "10m", "--max-messages", "100",
                "--max-message-size", "1m").out
    assert "added domain vh.test" in out
    with open(d.table("domains")) as f:
        assert ("vh.test aliases=mail.vh.test max_accounts=5 mailbox_limit=10485760 max_messages=100 "
                "max_message_size=1048576 ip=127.0.0.2 hostname=mx.vh.test\n") in f.read()
    # refusals, each with its reason
    for args, why in [
        (("domain", "add", "x.test", "--hostname", "mx.x.test"), "--hostname needs --ip"),
        (("domain", "add", "x.test", "--ip", "localhost"), "invalid address \"localhost\" in ip="),
        (("domain", "add", "x.test", "--ip", "127.0.0.2", "--hostname", "mx.x.test"),
         "vh.test shares an address with it and greets as mx.vh.test"),
        (("domain", "add", "x.test", "-a", "mail.vh.test"), "host alias mail.vh.test already belongs to vh.test"),
        (("domain", "set", "nowhere.test", "--max-accounts", "1"), "no such domain: nowhere.test"),
        (("domain", "set", "mail.vh.test", "--max-accounts", "1"), "is a host alias of vh.test, not a domain"),
        (("domain", "set", "vh.test", "-d", "mx.other.test"), "mx.other.test is not a host alias of vh.test"),
        (("domain", "set", "vh.test", "--ip", ""), "--hostname needs --ip"),
    ]:
        cp = d.ctl(*args, check=False)
        assert cp.returncode == 1 and why in cp.err, (args, cp.returncode, cp.err)
    assert d.ctl("domain", "add", "x.test", "--ip", "", check=False).returncode == 2
    # the same address with the same name, or without a name of its own, is fine
    d.ctl("domain", "add", "y.test", "--ip", "127.0.0.2", "--hostname", "mx.vh.test")
    d.ctl("domain", "add", "z.test", "--ip", "127.0.0.2")
    d.ctl("domain", "set", "vh.test", "-d", "mail.vh.test", "-a", "smtp.vh.test", "--max-accounts", "0",
          "--hostname", "", "--ip", "")
    listing = d.ctl("domain", "list").out
    assert re.search(r"^vh\.test aliases=smtp\.vh\.test max_accounts=0 mailbox_limit=10485760 max_messages=100 "
                     r"max_message_size=1048576 accounts=0$", listing, re.M), listing
    assert re.search(r"^y\.test .* ip=127\.0\.0\.2 hostname=mx\.vh\.test accounts=0$", listing, re.M), listing
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 0, cp.err


def test_config_check_virtual_hosts(make_daemon):
    port = free_port()
    d = make_daemon(start=False, aliases="sales@mail.other.test carol@other.test\n",
                    params={"listen": "127.0.0.1:%d 127.0.0.2:%d" % (port, port), "hidden_ips": "127.0.0.2"})
    assert d.run_tsubamed("-n", "-c", d.conf).returncode == 1   # the alias: written with a host alias
    d.append_table("domains", "two.test ip=127.0.0.2\nfive.test ip=127.0.0.5 hostname=mx.five.test\n"
                              "six.test hostname=mx.six.test\n")
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 1, cp.out
    dom, al = re.escape(d.table("domains")), re.escape(d.table("aliases"))
    for pattern in [
        dom + r":3: ip=127\.0\.0\.2 of two\.test is in hidden_ips",
        dom + r":4: ip=127\.0\.0\.5 of five\.test: no listen or submission_listen entry binds it",
        dom + r":5: hostname=mx\.six\.test needs ip=",
        al + r":1: mail\.other\.test is a host alias of other\.test: write the alias as sales@other\.test",
    ]:
        assert re.search(pattern, cp.err), (pattern, cp.err)
    # tsubamectl check says the same
    cp2 = d.ctl("check", check=False)
    assert cp2.returncode == 1 and "five.test" in cp2.err


def test_config_check_shared_maildir(make_daemon):
    # seed 004: virtual hosts sharing one top directory share the mailboxes of same-named users
    d = make_daemon(start=False, aliases="", accounts=[("demo@example.test", "pw", []), ("demo@other.test", "pw", [])])
    assert d.run_tsubamed("-n", "-c", d.conf).returncode == 0
    d.params["mailbox_path"] = d.mail + "/%USERNAME%/Maildir"
    d.write_conf()
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 1
    assert re.search(re.escape(d.table("accounts")) + r":2: demo@other\.test would share the Maildir .*/demo/Maildir "
                     r"with demo@example\.test \(line 1\): put %DOMAIN% in mailbox_path", cp.err), cp.err
