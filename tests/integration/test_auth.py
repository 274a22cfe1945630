"""SMTP AUTH (R3, issue 3) with real clients: swaks PLAIN/LOGIN/CRAM-MD5 over STARTTLS, implicit TLS
and the submission listener; failures, their delay and throttling; sender-trust modes; the
authenticated user in Received:; the smaller AUTH replies."""

import os
import re
import shutil
import subprocess
import time

import pytest

from tsubame_harness import Daemon, b64, finish, free_port, make_cert, qid_of, split_delivered, token

SWAKS = shutil.which("swaks")

ACCOUNTS = [
    ("demo@example.test", "demo-pass", []),
    ("bob@example.test", "bob-pass", []),
    ("cram@example.test", "cram-pass", ["-A", "1"]),      # opted in to CRAM-MD5, keeps a secret
    ("apopnosecret@example.test", "x-pass", ["-A", "1"]),  # opted in, no secret
    ("noapop@example.test", "y-pass", ["-A", "0"]),        # a secret in the file, but no opt-in
]
CRAM_SECRET = "cram-secret-1"


def set_secrets(d):
    """CRAM-MD5 secrets via `tsubamectl secret set`; when this build lacks the command, write the file."""
    cp = d.ctl("secret", "set", "cram@example.test", "-p", CRAM_SECRET, check=False)
    d.secret_cmd = cp
    text = open(d.table("secrets")).read() if os.path.exists(d.table("secrets")) else ""
    if cp.returncode != 0:
        text = "cram@example.test\t%s\n" % CRAM_SECRET
    text += "noapop@example.test\tnoapop-secret\n"
    d.write_table("secrets", text)
    if os.geteuid() == 0:
        os.chmod(d.table("secrets"), 0o644)


@pytest.fixture(scope="module")
def cert(base_dir):
    return make_cert(os.path.join(base_dir, "auth-cert"))


def new_site(base_dir, cert, name, **params):
    port, tport, sport = free_port(), free_port(), free_port()
    p = {
        "listen": "127.0.0.1:%d 127.0.0.1:%d*" % (port, tport),
        "submission_listen": "127.0.0.1:%d" % sport,
        "tls_cert_file": cert[0],
        "tls_key_file": cert[1],
        "auth_failure_delay": "0",
    }
    p.update(params)
    d = Daemon(base_dir, name=name, params=p, port=port, accounts=ACCOUNTS)
    d.tls_port, d.sub_port = tport, sport
    set_secrets(d)
    d.start()
    return d


@pytest.fixture(scope="module")
def site(base_dir, cert):
    d = new_site(base_dir, cert, "auth", auth_received="yes")
    yield d
    finish(d)


def swaks(port, *args, timeout=60):
    if not SWAKS:
        pytest.skip("swaks not installed (scripts/install-deps.sh)")
    cmd = [SWAKS, "--server", "127.0.0.1:%d" % port, "--ehlo", "client.example", "--timeout", "15"] + list(args)
    cp = subprocess.run(cmd, capture_output=True, timeout=timeout)
    cp.out = cp.stdout.decode("utf-8", "replace") + cp.stderr.decode("utf-8", "replace")
    return cp


def creds(mech):
    if mech == "CRAM-MD5":
        return "cram@example.test", CRAM_SECRET
    return "demo@example.test", "demo-pass"


def received_of(d, user, tok):
    (m,) = d.wait_for_token(user, tok)
    return split_delivered(m)[2].decode("utf-8", "replace")


def queued_remote(d, qid):
    out = d.ctl("queue", "list").out
    line = [l for l in out.splitlines() if qid in l]
    return line[0] if line else ""


# ---------------------------------------------------------------------------
# swaks: the three mechanisms, STARTTLS on the MX port, implicit TLS, submission


def test_secret_set_command(site):
    """`tsubamectl secret set` exists and stores the secret (the fixture falls back to writing the file)."""
    cp = site.secret_cmd
    assert cp.returncode == 0, "tsubamectl secret set -> %d\n%s%s" % (cp.returncode, cp.out, cp.err)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_starttls_auth_delivers(site, mech):
    user, pw = creds(mech)
    tok = token()
    cp = swaks(site.port, "-tls", "--auth", mech, "--auth-user", user, "--auth-password", pw,
               "--from", user, "--to", "demo@example.test", "--header", "Subject: %s" % tok)
    assert cp.returncode == 0, cp.out
    assert "235 2.7.0 Authentication successful" in cp.out, cp.out
    rcv = received_of(site, "demo@example.test", tok)
    assert "with ESMTPSA " in rcv, rcv
    assert "(Authenticated sender: %s)" % user in rcv, rcv
    assert re.search(r"\(using TLSv1\.[23] with cipher ", rcv), rcv


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_submission_relays_and_queues(site, mech):
    user, pw = creds(mech)
    tok = token()
    cp = swaks(site.sub_port, "-tls", "--auth", mech, "--auth-user", user, "--auth-password", pw,
               "--from", user, "--to", "friend@elsewhere.test", "--header", "Subject: %s" % tok)
    assert cp.returncode == 0, cp.out
    m = re.search(r"queued as (\S+)", cp.out)
    assert m, cp.out
    line = queued_remote(site, m.group(1))
    assert "friend@elsewhere.test(R)" in line, site.ctl("queue", "list").out
    site.ctl("queue", "delete", m.group(1))


def test_swaks_implicit_tls_auth(site):
    tok = token()
    cp = swaks(site.tls_port, "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "demo@example.test",
               "--auth-password", "demo-pass", "--from", "demo@example.test", "--to", "bob@example.test",
               "--header", "Subject: %s" % tok)
    assert cp.returncode == 0, cp.out
    assert "with ESMTPSA " in received_of(site, "bob@example.test", tok)


def test_swaks_wrong_password(site):
    cp = swaks(site.port, "-tls", "--auth", "PLAIN", "--auth-user", "demo@example.test", "--auth-password",
               "wrong", "--from", "demo@example.test", "--to", "demo@example.test")
    assert cp.returncode != 0, cp.out
    assert "535 5.7.8" in cp.out, cp.out


def test_stranger_cannot_relay_on_mx_port(site):
    cp = swaks(site.port, "-tls", "--from", "someone@outside.test", "--to", "friend@elsewhere.test")
    assert cp.returncode != 0, cp.out
    assert "550 5.7.1 <friend@elsewhere.test>: Relaying denied" in cp.out, cp.out


def test_submission_requires_auth(site):
    with site.session(port=site.sub_port) as s:
        r = s.ehlo()
        assert not any(l.startswith("AUTH") for l in r.lines), r
        s.expect("MAIL FROM:<someone@outside.test>", "530 5.7.0 Must issue a STARTTLS command first")
        s.starttls()
        r = s.ehlo()
        assert "AUTH PLAIN LOGIN CRAM-MD5" in r.lines, r
        s.expect("MAIL FROM:<someone@outside.test>", "530 5.7.0 Authentication required")
        s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0 Authentication required")
        s.expect("RCPT TO:<demo@example.test>", "503 5.5.1")
        assert s.auth_plain("demo@example.test", "demo-pass").startswith("235 2.7.0")
        s.expect("MAIL FROM:<demo@example.test>", "250 2.1.0")
        s.expect("RCPT TO:<friend@elsewhere.test>", "250 2.1.5")
        s.expect("QUIT", "221")


def test_auth_id_in_log(site):
    with site.session() as s:
        s.ehlo()
        s.starttls()
        s.ehlo()
        assert s.auth_login("bob@example.test", "bob-pass").startswith("235 2.7.0")
        s.expect("QUIT", "221")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "bob@example.test" not in site.log():
        time.sleep(0.05)
    assert any("bob@example.test" in l and "auth" in l.lower() for l in site.log().splitlines()), site.log()[-2000:]


# ---------------------------------------------------------------------------
# CRAM-MD5 only for accounts that opted in and keep a secret


def tls_session(d):
    s = d.session()
    s.ehlo()
    s.starttls()
    s.ehlo()
    return s


@pytest.mark.parametrize("user,secret", [
    ("bob@example.test", "bob-pass"),                 # no opt-in, no secret: the password is not a secret
    ("noapop@example.test", "noapop-secret"),         # a secret in the file, but no opt-in
    ("apopnosecret@example.test", "x-pass"),          # opted in, no secret
    ("cram@example.test", "cram-pass"),               # the password is not the secret
    ("nosuch@example.test", "whatever"),
])
def test_cram_md5_refused(site, user, secret):
    with tls_session(site) as s:
        r = s.auth_cram(user, secret)
        assert r.startswith("535 5.7.8"), (user, r)


def test_cram_md5_accepted(site):
    with tls_session(site) as s:
        assert s.auth_cram("cram@example.test", CRAM_SECRET).startswith("235 2.7.0")
        s.expect("AUTH PLAIN " + b64("\0cram@example.test\0cram-pass"), "503 5.5.1")


def test_password_mechanisms_for_cram_account(site):
    with tls_session(site) as s:
        assert s.auth_plain("cram@example.test", "cram-pass").startswith("235 2.7.0")


# ---------------------------------------------------------------------------
# failures: delay, per-session limit, per-address throttling


def test_failure_delay_is_observable(base_dir, cert):
    d = new_site(base_dir, cert, "authdelay", auth_failure_delay="1", auth_plaintext="yes")
    try:
        with d.session() as s:
            s.ehlo()
            t = time.monotonic()
            r = s.auth_plain("demo@example.test", "wrong")
            took = time.monotonic() - t
            assert r.startswith("535 5.7.8 Error: authentication failed"), r
            assert took >= 0.9, "535 after %.2fs, auth_failure_delay = 1" % took
            t = time.monotonic()
            assert s.auth_plain("demo@example.test", "demo-pass").startswith("235 2.7.0")
            assert time.monotonic() - t < 0.9, "a successful AUTH must not be delayed"
    finally:
        finish(d)


@pytest.fixture(scope="module")
def throttle_site(base_dir, cert):
    d = new_site(base_dir, cert, "auththrottle", auth_plaintext="yes", auth_max_failures="3",
                 auth_max_failures_per_ip="4")
    yield d
    finish(d)


def test_max_failures_per_session_421(throttle_site):
    with throttle_site.session(source="127.0.0.40") as s:
        s.ehlo()
        s.expect("AUTH PLAIN " + b64("\0demo@example.test\0bad1"), "535 5.7.8")
        assert s.auth_login("demo@example.test", "bad2").startswith("535 5.7.8")
        r = s.auth_plain("demo@example.test", "bad3")
        assert r.startswith("535 5.7.8"), r
        r = s.reply(timeout=5)
        assert r.startswith("421 4.7.0"), r
        assert "too many authentication failures" in r.text, r
        assert s.wait_closed(5), "session not closed after 421"


def test_per_ip_throttling_454(throttle_site):
    ip = "127.0.0.41"
    with throttle_site.session(source=ip) as s:
        s.ehlo()
        for i in range(3):
            assert s.auth_plain("demo@example.test", "bad%d" % i).startswith("535 5.7.8")
        assert s.reply(timeout=5).startswith("421 4.7.0")
    with throttle_site.session(source=ip) as s:
        s.ehlo()
        assert s.auth_plain("demo@example.test", "bad4").startswith("535 5.7.8")   # the 4th: still checked
    with throttle_site.session(source=ip) as s:
        s.ehlo()
        # beyond auth_max_failures_per_ip: 454 without looking at the (correct) password
        r = s.auth_plain("demo@example.test", "demo-pass")
        assert r.startswith("454 4.7.0"), r
        r = s.auth_login("demo@example.test", "demo-pass")
        assert r.startswith("454 4.7.0"), r
        # the session goes on; the client may still send as an unauthenticated client
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        s.expect("RCPT TO:<friend@elsewhere.test>", "550 5.7.1")
    # another address is not affected
    with throttle_site.session(source="127.0.0.42") as s:
        s.ehlo()
        assert s.auth_plain("demo@example.test", "demo-pass").startswith("235 2.7.0")


# ---------------------------------------------------------------------------
# sender trust (R3): auth_id, auth_id=envelope, auth_id=envelope=from


@pytest.fixture(scope="module", params=["auth_id", "auth_id=envelope", "auth_id=envelope=from"])
def trust_site(base_dir, cert, request):
    d = new_site(base_dir, cert, "trust", auth_plaintext="yes", sender_trust=request.param)
    d.trust = request.param
    yield d
    finish(d)


def send_as(d, mail_from, header_from, auth=("demo@example.test", "demo-pass"), rcpt="bob@example.test"):
    """(MAIL reply, final reply or None, token)."""
    tok = token()
    with d.session() as s:
        s.ehlo()
        if auth:
            assert s.auth_plain(*auth).startswith("235 2.7.0")
        r = s.cmd("MAIL FROM:<%s>" % mail_from)
        if r.code != 250:
            return r, None, tok
        s.expect("RCPT TO:<%s>" % rcpt, "250 2.1.5")
        s.expect("DATA", "354")
        s.send("From: %s\r\nSubject: %s\r\n\r\nbody\r\n.\r\n" % (header_from, tok))
        final = s.reply()
        s.expect("QUIT", "221")
        return r, final, tok


NOT_OWNED = "553 5.7.1 <bob@example.test>: Sender address rejected: not owned by user demo@example.test"
FROM_MISMATCH = "550 5.7.1 From: header does not match the authenticated user"


@pytest.mark.parametrize("mail_from,header_from,case", [
    ("demo@example.test", "Demo <demo@example.test>", "all-match"),
    ("DEMO@Example.Test", "demo@example.test", "case"),
    ("demo@example.test", "Bob <bob@example.test>", "from-differs"),
    ("bob@example.test", "Demo <demo@example.test>", "envelope-differs"),
    ("bob@example.test", "bob@example.test", "both-differ"),
])
def test_sender_trust(trust_site, mail_from, header_from, case):
    d = trust_site
    env_ok = mail_from.lower() == "demo@example.test"
    from_ok = "demo@example.test" in header_from.lower()
    mail, final, tok = send_as(d, mail_from, header_from)
    if d.trust != "auth_id" and not env_ok:
        assert mail.startswith(NOT_OWNED.replace("<bob@example.test>", "<%s>" % mail_from)), (d.trust, case, mail)
        return
    assert mail.startswith("250 2.1.0"), (d.trust, case, mail)
    if d.trust == "auth_id=envelope=from" and not from_ok:
        assert final.startswith(FROM_MISMATCH), (d.trust, case, final)
        time.sleep(0.3)
        assert not d.find("bob@example.test", tok), "refused message was delivered"
        return
    assert final.startswith("250 2.0.0") and qid_of(final), (d.trust, case, final)
    rcv = received_of(d, "bob@example.test", tok)
    assert "with ESMTPA " in rcv, rcv
    assert "Authenticated sender" not in rcv, rcv   # auth_received = no (the default)


def test_sender_trust_does_not_touch_unauthenticated(trust_site):
    mail, final, tok = send_as(trust_site, "someone@outside.test", "Eve <eve@outside.test>", auth=None)
    assert mail.startswith("250") and final.startswith("250 2.0.0"), (mail, final)


def test_from_check_multiple_from_addresses(trust_site):
    if trust_site.trust != "auth_id=envelope=from":
        pytest.skip("From: check only in auth_id=envelope=from")
    mail, final, tok = send_as(trust_site, "demo@example.test", "demo@example.test, bob@example.test")
    assert final.startswith("550 5.7.1"), final


# ---------------------------------------------------------------------------
# the smaller replies


@pytest.fixture(scope="module")
def plain_site(base_dir, cert):
    d = new_site(base_dir, cert, "authplain", auth_plaintext="yes")
    yield d
    finish(d)


def test_auth_plaintext_yes_offers_auth(plain_site):
    with plain_site.session() as s:
        r = s.ehlo()
        assert "AUTH PLAIN LOGIN CRAM-MD5" in r.lines and "STARTTLS" in r.lines, r
        assert s.auth_plain("demo@example.test", "demo-pass").startswith("235 2.7.0 Authentication successful")


@pytest.mark.parametrize("steps", [
    [("AUTH FOO", "504 5.5.4")],
    [("AUTH DIGEST-MD5", "504 5.5.4")],
    [("AUTH PLAIN", "334"), ("*", "501 5.7.0")],
    [("AUTH LOGIN", "334"), ("*", "501 5.7.0")],
    [("AUTH CRAM-MD5", "334"), ("*", "501 5.7.0")],
    [("AUTH PLAIN !!!notbase64", "501 5.5.2")],
    [("AUTH LOGIN", "334"), ("%%%", "501 5.5.2")],
    [("AUTH", "501 5.5.4")],
    [("AUTH PLAIN " + b64("\0demo@example.test\0demo-pass"), "235 2.7.0"),
     ("AUTH PLAIN " + b64("\0demo@example.test\0demo-pass"), "503 5.5.1")],
    [("MAIL FROM:<a@client.test>", "250"), ("AUTH PLAIN " + b64("\0demo@example.test\0demo-pass"), "503 5.5.1")],
    [("AUTH PLAIN " + b64("\0demo@example.test\0wrong"), "535 5.7.8"),
     ("AUTH PLAIN " + b64("\0demo@example.test\0demo-pass"), "235 2.7.0")],
    [("AUTH PLAIN " + b64("demo@example.test\0demo@example.test\0demo-pass"), "235 2.7.0")],
    [("AUTH PLAIN " + b64("bob@example.test\0demo@example.test\0demo-pass"), "535 5.7.8")],
], ids=["unknown", "digest", "cancel-plain", "cancel-login", "cancel-cram", "bad-b64", "bad-b64-login",
        "no-mech", "twice", "in-transaction", "retry-after-failure", "authzid-same", "authzid-other"])
def test_auth_replies(plain_site, steps):
    with plain_site.session() as s:
        s.ehlo()
        for line, want in steps:
            s.expect(line, want)
        s.expect("NOOP", "250")


def test_auth_after_helo(plain_site):
    with plain_site.session() as s:
        s.expect("HELO client.example", "250")
        s.expect("AUTH PLAIN " + b64("\0demo@example.test\0demo-pass"), "503 5.5.1")


def test_auth_methods_no(make_daemon):
    d = make_daemon(params={"auth_methods": "NO", "auth_plaintext": "yes"})
    with d.session() as s:
        r = s.ehlo()
        assert not any(l.startswith("AUTH") for l in r.lines), r
        s.expect("AUTH PLAIN " + b64("\0demo@example.test\0demo-pass"), "503 5.5.1")
        # no AUTH possible: still no relaying for strangers
        s.expect("MAIL FROM:<someone@outside.test>", "250")
        s.expect("RCPT TO:<friend@elsewhere.test>", "550 5.7.1 <friend@elsewhere.test>: Relaying denied")


def test_auth_methods_subset(make_daemon):
    d = make_daemon(params={"auth_methods": "PLAIN", "auth_plaintext": "yes"})
    with d.session() as s:
        r = s.ehlo()
        assert "AUTH PLAIN" in r.lines, r
        s.expect("AUTH LOGIN", "504 5.5.4")
        s.expect("AUTH CRAM-MD5", "504 5.5.4")
        assert s.auth_plain("demo@example.test", "demo-pass").startswith("235 2.7.0")


def test_starttls_discards_plaintext_auth(plain_site):
    """RFC 3207 4.2: after STARTTLS the server forgets what the client said before, AUTH included
    (otherwise a man in the middle could log the session in as himself before the handshake)."""
    with plain_site.session() as s:
        s.ehlo()
        assert s.auth_plain("bob@example.test", "bob-pass").startswith("235 2.7.0")
        s.starttls()
        s.ehlo()
        # demo@example.test has the auth flag: an unauthenticated session must be asked to log in
        s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0")
        s.expect("RSET", "250")
        assert s.auth_plain("demo@example.test", "demo-pass").startswith("235 2.7.0")

