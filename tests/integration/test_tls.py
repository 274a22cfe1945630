"""TLS (R1, issue 3): STARTTLS and implicit-TLS listeners with a certificate made at test time,
real clients (smtplib, openssl s_client), TLS 1.2+ only, the STARTTLS injection of CVE-2011-0411,
the Received: header, and bad certificate configurations."""

import os
import select
import shutil
import smtplib
import ssl
import subprocess
import time

import pytest

from tsubame_harness import (Daemon, client_tls_context, finish, free_port, make_cert, qid_of, split_delivered,
                             token)

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def cert(base_dir):
    return make_cert(os.path.join(base_dir, "tls-cert"))


def tls_params(cert, port, tport, sport, **extra):
    p = {
        "listen": "127.0.0.1:%d 127.0.0.1:%d*" % (port, tport),
        "submission_listen": "127.0.0.1:%d" % sport,
        "tls_cert_file": cert[0],
        "tls_key_file": cert[1],
        "auth_failure_delay": "0",
    }
    p.update(extra)
    return p


@pytest.fixture(scope="module")
def site(base_dir, cert):
    port, tport, sport = free_port(), free_port(), free_port()
    d = Daemon(base_dir, name="tls", params=tls_params(cert, port, tport, sport), port=port)
    d.tls_port, d.sub_port = tport, sport
    d.start()
    yield d
    finish(d)


@pytest.fixture
def tsite(site):
    site.mark()
    yield site
    assert site.running(), "tsubamed died during the test:\n%s" % site.tail()
    reports = site.sanitizer_reports(since_mark=True)
    assert not reports, "sanitizer report during the test:\n" + "\n".join(reports)


def received_of(d, user, tok):
    (m,) = d.wait_for_token(user, tok)
    return split_delivered(m)[2].decode("utf-8", "replace")


def s_client(args, stdin=b"", timeout=20):
    if not OPENSSL:
        pytest.skip("openssl not installed")
    cp = subprocess.run([OPENSSL, "s_client"] + args, input=stdin, capture_output=True, timeout=timeout)
    cp.out = cp.stdout.decode("utf-8", "replace")
    cp.err = cp.stderr.decode("utf-8", "replace")
    return cp


# ---------------------------------------------------------------------------
# EHLO and STARTTLS replies


def test_ehlo_offers_starttls_not_auth_in_plaintext(tsite):
    with tsite.session() as s:
        r = s.ehlo()
        assert "STARTTLS" in r.lines, r
        assert not any(l.startswith("AUTH") for l in r.lines), r
        s.expect("AUTH PLAIN " + "AGRlbW9AZXhhbXBsZS50ZXN0AGRlbW8tcGFzcw==", "538 5.7.11")
        # demo@example.test has the auth flag (level 3): STARTTLS first
        s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0 Must issue a STARTTLS command first")


def test_starttls_then_ehlo_again(tsite):
    with tsite.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.starttls()
        assert s.tls_version in ("TLSv1.2", "TLSv1.3"), s.tls_version
        # the transaction and the EHLO state are gone
        s.expect("MAIL FROM:<a@client.test>", "503 5.5.1")
        r = s.ehlo()
        assert "STARTTLS" not in r.lines, r
        assert "AUTH PLAIN LOGIN CRAM-MD5" in r.lines, r
        s.expect("STARTTLS", "503 5.5.1")
        s.expect("RCPT TO:<demo@example.test>", "503 5.5.1 Error: need MAIL command")
        s.expect("QUIT", "221")


def test_starttls_on_implicit_tls_port_is_503(tsite):
    with tsite.session(port=tsite.tls_port, tls=True) as s:
        assert s.greeting.code == 220, s.greeting
        r = s.ehlo()
        assert "STARTTLS" not in r.lines and "AUTH PLAIN LOGIN CRAM-MD5" in r.lines, r
        s.expect("STARTTLS", "503 5.5.1")


def test_starttls_without_certificate_is_502(make_daemon):
    d = make_daemon()
    with d.session() as s:
        r = s.ehlo()
        assert "STARTTLS" not in r.lines, r
        s.expect("STARTTLS", "502 5.5.1")
        s.expect("NOOP", "250")


def test_starttls_injection_is_discarded(tsite):
    """CVE-2011-0411: a command pipelined after STARTTLS in the same packet must not run."""
    with tsite.session() as s:
        s.ehlo()
        s.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
        r = s.reply()
        assert r.startswith("220 2.0.0"), r
        assert s.pending(0.3) == b"", "plaintext reply after STARTTLS: %r" % s.buf
        s.sock = client_tls_context().wrap_socket(s.sock)
        s.ehlo()
        s.expect("RCPT TO:<demo@example.test>", "503 5.5.1 Error: need MAIL command")
        s.expect("MAIL FROM:<a@client.test>", "250 2.1.0")   # not "nested MAIL"
        s.expect("QUIT", "221")


def test_starttls_injection_in_handshake_packet(tsite):
    """Plaintext glued to the STARTTLS line must not show up as a command in the TLS session either."""
    with tsite.session() as s:
        s.ehlo()
        s.send(b"STARTTLS\r\nRSET\r\nRSET\r\nQUIT\r\n")
        r = s.reply()
        assert r.startswith("220 2.0.0"), r
        s.sock = client_tls_context().wrap_socket(s.sock)
        s.expect("NOOP", "250")   # the first reply in TLS is ours, not the injected RSET/QUIT
        assert s.pending(0.3) == b"", s.buf


# ---------------------------------------------------------------------------
# real clients


def test_smtplib_starttls_delivers_with_tls_in_received(tsite):
    tok = token()
    with smtplib.SMTP("127.0.0.1", tsite.port, local_hostname="client.example", timeout=10) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        c.starttls(context=client_tls_context())
        c.ehlo()
        version = c.sock.version()
        assert version in ("TLSv1.2", "TLSv1.3"), version
        c.sendmail("a@client.test", ["demo@example.test"], "Subject: %s\r\n\r\nover tls\r\n" % tok)
    rcv = received_of(tsite, "demo@example.test", tok)
    assert "(using %s with cipher " % version in rcv, rcv
    assert "with ESMTPS " in rcv, rcv
    assert "TLS" in tsite.log(), "TLS not in the log"


def test_smtp_ssl_implicit_tls(tsite):
    tok = token()
    with smtplib.SMTP_SSL("127.0.0.1", tsite.tls_port, local_hostname="client.example", timeout=10,
                          context=client_tls_context()) as c:
        code, _ = c.ehlo()
        assert code == 250
        assert not c.has_extn("starttls")
        version = c.sock.version()
        c.sendmail("a@client.test", ["demo@example.test"], "Subject: %s\r\n\r\nimplicit\r\n" % tok)
    rcv = received_of(tsite, "demo@example.test", tok)
    assert "(using %s with cipher " % version in rcv and "with ESMTPS " in rcv, rcv


def s_client_dialogue(args, steps, timeout=20.0):
    """Run s_client and talk to it: steps is a list of (wait_for_text, line_to_send); waits are bounded.
    The text is looked for in stdout, except "CONNECTION ESTABLISHED" (stderr, -brief).
    Returns (stdout, stderr) text."""
    if not OPENSSL:
        pytest.skip("openssl not installed")
    p = subprocess.Popen([OPENSSL, "s_client"] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out = {p.stdout.fileno(): b"", p.stderr.fileno(): b""}
    open_fds = set(out)
    deadline = time.monotonic() + timeout
    try:
        for want, line in steps:
            fds = list(out)
            while want.encode() not in out[fds[1] if want == "CONNECTION ESTABLISHED" else fds[0]]:
                left = deadline - time.monotonic()
                assert left > 0, "s_client: no %r within %.0fs:\n%s" % (want, timeout, b"".join(out.values()))
                if not open_fds:
                    raise AssertionError("s_client closed its output (exit %s) before %r:\n%s" % (
                        p.poll(), want, b"".join(out.values())))
                ready, _, _ = select.select(list(open_fds), [], [], left)
                for fd in ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        open_fds.discard(fd)
                    out[fd] += chunk
            if line is not None:
                p.stdin.write(line.encode() + b"\n")
                p.stdin.flush()
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
        o, e = p.communicate()
        out[list(out)[0]] += o
        out[list(out)[1]] += e
    vals = list(out.values())
    return vals[0].decode("utf-8", "replace"), vals[1].decode("utf-8", "replace")


def test_openssl_s_client_starttls(tsite):
    out, err = s_client_dialogue(
        ["-starttls", "smtp", "-connect", "127.0.0.1:%d" % tsite.port, "-crlf", "-brief", "-ign_eof"],
        [("CONNECTION ESTABLISHED", "EHLO s-client.example"), ("\r\n250 ", "QUIT"), ("221 ", None)])
    assert "Protocol version: TLSv1.3" in err or "Protocol version: TLSv1.2" in err, err
    assert "250-AUTH PLAIN LOGIN CRAM-MD5" in out or "250 AUTH PLAIN LOGIN CRAM-MD5" in out, out
    assert "STARTTLS" not in out, out
    assert "221 2.0.0" in out, out


def test_openssl_s_client_implicit_tls(tsite):
    out, err = s_client_dialogue(["-connect", "127.0.0.1:%d" % tsite.tls_port, "-crlf", "-brief", "-ign_eof"],
                                 [("220 ", "EHLO s-client.example"), ("\r\n250 ", "QUIT"), ("221 ", None)])
    assert "CONNECTION ESTABLISHED" in err, err
    assert "220 tsubame.test ESMTP" in out, out
    assert "221 2.0.0" in out, out


@pytest.mark.parametrize("flag,ok", [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)])
def test_protocol_versions(tsite, flag, ok):
    # SECLEVEL=0 so that a refusal comes from the server, not from the client's own policy
    cp = s_client(["-connect", "127.0.0.1:%d" % tsite.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0", "-brief",
                   "-ign_eof"], stdin=b"QUIT\r\n")
    text = cp.out + cp.err
    established = "CONNECTION ESTABLISHED" in text and cp.returncode == 0
    assert established == ok, (flag, cp.returncode, text[-800:])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_python_refuses_tls11(tsite):
    ctx = client_tls_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, OSError)):
        with smtplib.SMTP_SSL("127.0.0.1", tsite.tls_port, timeout=10, context=ctx) as c:
            c.ehlo()


def test_tls_min_version_13(base_dir, cert):
    port, tport, sport = free_port(), free_port(), free_port()
    d = Daemon(base_dir, name="tls13", params=tls_params(cert, port, tport, sport, tls_min_version="TLSv1.3"),
               port=port)
    d.start()
    try:
        cp = s_client(["-connect", "127.0.0.1:%d" % tport, "-tls1_2", "-brief", "-ign_eof"], stdin=b"QUIT\r\n")
        assert cp.returncode != 0 and "CONNECTION ESTABLISHED" not in cp.out + cp.err, cp.out + cp.err
        cp = s_client(["-connect", "127.0.0.1:%d" % tport, "-tls1_3", "-brief", "-ign_eof"], stdin=b"QUIT\r\n")
        assert "CONNECTION ESTABLISHED" in cp.out + cp.err, cp.out + cp.err
    finally:
        finish(d)


def test_submission_starttls_and_auth_required(tsite):
    with tsite.session(port=tsite.sub_port) as s:
        r = s.ehlo()
        assert "STARTTLS" in r.lines, r
        s.expect("MAIL FROM:<a@client.test>", "530 5.7.0")
        s.starttls()
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "530 5.7.0 Authentication required")
        s.expect("QUIT", "221")


# ---------------------------------------------------------------------------
# bad configurations are caught by tsubamed -n


def check_conf(base_dir, name, **params):
    d = Daemon(base_dir, name=name, params=params, accounts=[])
    cp = d.run_tsubamed("-n", "-c", d.conf)
    return d, cp


def test_missing_certificate_file_named(base_dir, cert):
    missing = os.path.join(base_dir, "no-such-cert.pem")
    d, cp = check_conf(base_dir, "badcert", tls_cert_file=missing, tls_key_file=cert[1])
    assert cp.returncode != 0, (cp.out, cp.err)
    assert "no-such-cert.pem" in cp.out + cp.err, (cp.out, cp.err)


def test_garbage_certificate_file_named(base_dir, cert):
    bad = os.path.join(base_dir, "garbage-cert.pem")
    with open(bad, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    d, cp = check_conf(base_dir, "garbagecert", tls_cert_file=bad, tls_key_file=cert[1])
    assert cp.returncode != 0, (cp.out, cp.err)
    assert "garbage-cert.pem" in cp.out + cp.err, (cp.out, cp.err)


def test_key_not_matching_certificate(base_dir, cert):
    other = make_cert(os.path.join(base_dir, "other-cert"))
    d, cp = check_conf(base_dir, "keymismatch", tls_cert_file=cert[0], tls_key_file=other[1])
    assert cp.returncode != 0, (cp.out, cp.err)
    assert "key.pem" in cp.out + cp.err or "cert.pem" in cp.out + cp.err, (cp.out, cp.err)


def test_missing_key_file_named(base_dir, cert):
    d, cp = check_conf(base_dir, "nokey", tls_cert_file=cert[0], tls_key_file=os.path.join(base_dir, "nokey.pem"))
    assert cp.returncode != 0 and "nokey.pem" in cp.out + cp.err, (cp.out, cp.err)


def test_implicit_tls_listener_without_certificate_is_an_error(base_dir):
    d, cp = check_conf(base_dir, "implicitnocert", listen="127.0.0.1:%d*" % free_port())
    assert cp.returncode != 0, (cp.out, cp.err)


def test_relative_certificate_paths(base_dir, cert):
    """tls_cert_file/tls_key_file relative to the configuration folder."""
    port = free_port()
    d = Daemon(base_dir, name="tlsrel", port=port,
               params={"tls_cert_file": "tls/cert.pem", "tls_key_file": "tls/key.pem"})
    os.makedirs(os.path.join(d.etc, "tls"))
    shutil.copy(cert[0], os.path.join(d.etc, "tls", "cert.pem"))
    shutil.copy(cert[1], os.path.join(d.etc, "tls", "key.pem"))
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 0, (cp.out, cp.err)
    d.start()
    try:
        with d.session() as s:
            s.ehlo()
            s.starttls()
            s.ehlo()
    finally:
        finish(d)


@pytest.mark.parametrize("cipher,ok", [("AES128-SHA", False), ("AES256-SHA256", False), ("DES-CBC3-SHA", False),
                                       ("ECDHE-RSA-AES128-GCM-SHA256", True)])
def test_tls12_cipher_policy(tsite, cipher, ok):
    """TLS 1.2: forward secrecy and AEAD only (tls_ciphers default)."""
    cp = s_client(["-connect", "127.0.0.1:%d" % tsite.tls_port, "-tls1_2", "-cipher", cipher + ":@SECLEVEL=0",
                   "-brief", "-ign_eof"], stdin=b"QUIT\r\n")
    established = "CONNECTION ESTABLISHED" in cp.out + cp.err and cp.returncode == 0
    assert established == ok, (cipher, cp.returncode, (cp.out + cp.err)[-600:])
