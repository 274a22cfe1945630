"""Debian's Postfix as a real smart host: AUTH over STARTTLS, then relay to a sink.

A private Postfix instance (its own main.cf/master.cf, queue and data directories, nothing
of the system's /etc/postfix used) is started by the test on 127.0.0.20:<free port>.  Its
smtpd offers STARTTLS with a certificate made now, announces AUTH only after STARTTLS
(smtpd_tls_auth_only), checks passwords with Cyrus SASL against a sasldb made by
saslpasswd2, and relays only for authenticated clients.  It relays onward to a sink
(delivery_peers.Sink) on 127.0.0.21 through relayhost = [127.0.0.21]:port: no DNS anywhere.
Tsubame sends everything there with delivery_mode = smarthost and the credentials.

Tsubame's client does not verify the smart host's certificate (src/tls/tls_client.c is
given tls_verify = 0 by src/deliver/remote.c, and there is no CA setting), so the
self-signed certificate is accepted as is: encrypted, not authenticated.

Needs root (Postfix's master), /usr/sbin/postfix and saslpasswd2 (packages postfix,
sasl2-bin, libsasl2-modules, libsasl2-modules-db): skipped with a reason otherwise.
Every wait is bounded; the instance is stopped at teardown (postfix stop, then SIGKILL of
its process group if the master is still there).
"""
import email
import email.policy
import os
import re
import shutil
import subprocess
import time

import pytest

from delivery_peers import Sink
from postfix_peer import POSTFIX, PrivatePostfix
from tsubame_harness import IS_ROOT, make_cert, token, wait_log as harness_wait_log

SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
RELAY_IP = "127.0.0.20"
SINK_IP = "127.0.0.21"
RELAY_NAME = "relay.postfix.test"
SASL_REALM = "postfix.test"
SASL_USER, SASL_PASSWORD = "tsubame-relay", "Relay-s3cret"
SASL_LOGIN = SASL_USER + "@" + SASL_REALM      # the name Cyrus gives it (smtpd_sasl_local_domain)
DEAD_DNS = "127.0.0.1:9"

MASTER_CF = """\
# written by tests/integration/test_smarthost_postfix.py: one inet listener, no chroot
# service type  private unpriv  chroot  wakeup  maxproc command
{ip}:{port} inet n      -       n       -       10      smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
# written by tests/integration/test_smarthost_postfix.py: a private relay instance
compatibility_level = 3.6
config_directory = {top}/etc
queue_directory = {top}/queue
data_directory = {top}/data
myhostname = {name}
mydomain = postfix.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
# the listener's address is in master.cf: Postfix only accepts interface addresses here,
# and 127.0.0.20 is not one (it is reachable through lo's 127.0.0.0/8 all the same)
inet_interfaces = loopback-only
inet_protocols = ipv4
# nobody relays by address: only an authenticated client may
mynetworks = 127.0.0.254/32
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_peername_lookup = no
# STARTTLS with the test's certificate; AUTH only once TLS is up
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {top}/etc/sasl
smtpd_sasl_local_domain = {realm}
smtpd_sasl_security_options = noanonymous
smtpd_sasl_authenticated_header = yes
# onward to the sink only: bracketed address, no DNS, no TLS to it
relayhost = [{sink_ip}]:{sink_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
smtp_sasl_auth_enable = no
# a refused recipient must not linger: the tests only use accepted ones
maximal_queue_lifetime = 1h
biff = no
maillog_file = {top}/maillog
maillog_file_prefixes = {top}
"""

SMTPD_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: {sasldb}
mech_list: PLAIN LOGIN
"""


def need_postfix():
    if not os.access(POSTFIX, os.X_OK):
        pytest.skip("%s is missing (scripts/install-deps.sh test installs postfix)" % POSTFIX)
    if not os.access(SASLPASSWD2, os.X_OK):
        pytest.skip("saslpasswd2 is missing (scripts/install-deps.sh test installs sasl2-bin)")
    if not IS_ROOT:
        pytest.skip("a private Postfix instance needs root (its master starts as root)")


class PostfixRelay(PrivatePostfix):
    """A private Postfix instance under top/, listening on ip:port, relaying to a sink."""

    def __init__(self, top, ip, sink_ip, sink_port, cert, key):
        super().__init__(top, ip)
        # Debian's Postfix looks for smtpd.conf in $config_directory/sasl whatever
        # cyrus_sasl_config_path says (upstream's uses that setting): both point here.
        self.sasl = os.path.join(self.etc, "sasl")
        os.makedirs(self.sasl, exist_ok=True)
        os.chmod(self.sasl, 0o755)
        # Cyrus SASL: smtpd.conf (application name "smtpd") and a sasldb that smtpd,
        # running as the postfix user once it has dropped root, can read.
        self.sasldb = os.path.join(self.sasl, "sasldb2")
        self.write_etc("sasl/smtpd.conf", SMTPD_CONF.format(sasldb=self.sasldb))
        cp = subprocess.run([SASLPASSWD2, "-p", "-c", "-f", self.sasldb, "-u", SASL_REALM, SASL_USER],
                            input=SASL_PASSWORD.encode(), capture_output=True, timeout=30)
        assert cp.returncode == 0 and os.path.exists(self.sasldb), "saslpasswd2 -> %d: %s" % (
            cp.returncode, cp.stderr.decode("utf-8", "replace"))
        os.chown(self.sasldb, self.pw.pw_uid, self.pw.pw_gid)
        os.chmod(self.sasldb, 0o600)
        self.write_etc("main.cf", MAIN_CF.format(top=top, name=RELAY_NAME, ip=ip, cert=cert, key=key,
                                                 realm=SASL_REALM, sink_ip=sink_ip, sink_port=sink_port))
        self.write_etc("master.cf", MASTER_CF.format(ip=ip, port=self.port))

    def wait_log(self, pattern, timeout=15.0):
        return super().wait_log(pattern, timeout)


@pytest.fixture(scope="module")
def relay(base_dir):
    """(postfix, sink): a private Postfix on 127.0.0.20 that relays to a sink on 127.0.0.21."""
    need_postfix()
    top = os.path.join(base_dir, "postfix-relay-%d" % os.getpid())
    cert, key = make_cert(os.path.join(top, "cert"), cn=RELAY_NAME)
    sink = Sink(SINK_IP)
    pf = PostfixRelay(top, RELAY_IP, SINK_IP, sink.port, cert, key)
    try:
        pf.start()
        yield pf, sink
    finally:
        pf.stop()
        sink.stop()


# --------------------------------------------------------------------------
# Tsubame's side


def smarthost_site(make_daemon, pf, password, **extra):
    params = {
        "dns_servers": DEAD_DNS,                 # nothing here may need DNS
        "delivery_mode": "smarthost",
        "smarthost": "%s:%d" % (pf.ip, pf.port),
        "smarthost_auth_user": SASL_USER,
        "smarthost_auth_password": password,
        "smtp_tls": "mandatory",
        "retry_interval": "1",
        "smtp_timeout": "10",
        "smtp_connect_timeout": "5",
        "auth_plaintext": "yes",                 # demo@ authenticates to us without TLS (loopback)
    }
    params.update({k: str(v) for k, v in extra.items()})
    d = make_daemon(params=params, start=False)
    d.write_table("relay", "127.0.0.1 true\n")
    d.start()
    return d


def send_as_demo(d, rcpts, data):
    with d.smtp() as s:
        s.ehlo()
        s.user, s.password = "demo@example.test", "demo-pass"
        code, resp = s.auth("PLAIN", s.auth_plain)
        assert code == 235, (code, resp)
        refused = s.sendmail("demo@example.test", rcpts, data)
        assert not refused, refused


def message(tok, rcpt):
    return ("From: Demo <demo@example.test>\r\nTo: <%s>\r\nSubject: via postfix %s\r\n"
            "Message-ID: <%s@example.test>\r\n\r\nbody %s\r\n.leading dot\r\nlast line\r\n"
            % (rcpt, tok, tok, tok)).encode()


def wait_log(d, pattern, name="delivery", timeout=15.0):
    return harness_wait_log(d, pattern, name, timeout)


def received_headers(data):
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    return msg, [" ".join(h.split()) for h in msg.get_all("Received", [])]


def test_relayed_through_postfix_arrives(make_daemon, relay):
    pf, sink = relay
    d = smarthost_site(make_daemon, pf, SASL_PASSWORD)
    tok = token()
    rcpt = "someone@far-away.test"
    send_as_demo(d, [rcpt], message(tok, rcpt))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not [m for m in sink.messages if tok.encode() in m["data"]]:
        time.sleep(0.1)
    got = [m for m in sink.messages if tok.encode() in m["data"]]
    assert len(got) == 1, "sink has %d copies of %s\nPostfix:\n%s\nTsubame delivery.log:\n%s" % (
        len(got), tok, pf.log()[-3000:], d.log("delivery")[-2000:])
    m = got[0]
    assert m["mail_from"].startswith("FROM:<demo@example.test>"), m["mail_from"]
    assert [r.split(">")[0] for r in m["rcpts"]] == ["TO:<" + rcpt], m["rcpts"]
    msg, received = received_headers(m["data"])
    # Newest first: Postfix's (TLS, AUTH, ESMTPSA), then Tsubame's.
    assert len(received) >= 2, received
    assert "by %s (Postfix)" % RELAY_NAME in received[0], received
    assert "with ESMTPSA" in received[0], received           # ESMTP + TLS + AUTH (RFC 3848)
    assert re.search(r"\(using TLSv1\.[23] with cipher ", received[0]), received
    assert "(Authenticated sender: %s)" % SASL_LOGIN in received[0], received
    assert "by tsubame.test" in received[1], received
    assert msg["Subject"] == "via postfix " + tok
    assert b"\r\n.leading dot\r\n" in m["data"], m["data"][-200:]
    # Postfix's own log: TLS with our client, then the SASL login, then the relay to the sink.
    pf.wait_log(r"smtpd\[\d+\]: (Anonymous|Untrusted|Trusted|Verified) TLS connection established from")
    pf.wait_log(r"smtpd\[\d+\]: \w+: client=\S+, sasl_method=(PLAIN|LOGIN), sasl_username=%s$" % re.escape(SASL_LOGIN))
    pf.wait_log(r"smtp\[\d+\]: \w+: to=<%s>, relay=%s\[%s\]:%d, .*status=sent" % (
        re.escape(rcpt), re.escape(SINK_IP), re.escape(SINK_IP), sink.port))
    # Tsubame: delivered to the smart host, nothing left queued, no bounce.
    wait_log(d, r"event=delivered to=<%s> relay=[^ ]*%s\]?:%d" % (re.escape(rcpt), re.escape(pf.ip), pf.port))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and d.ctl("queue", "list").out.strip() not in ("", "0 messages"):
        time.sleep(0.1)
    assert d.ctl("queue", "list").out.strip() in ("", "0 messages"), d.ctl("queue", "list").out
    assert not d.message_files("demo@example.test")


def test_wrong_password_defers(make_daemon, relay):
    pf, sink = relay
    d = smarthost_site(make_daemon, pf, "not-the-password", retry_interval=60)
    tok = token()
    rcpt = "nobody@far-away.test"
    before = len(sink.messages)
    send_as_demo(d, [rcpt], message(tok, rcpt))
    # Tsubame: deferred (our credentials are wrong: an administrator's fix, not a bounce).
    hits = wait_log(d, r"event=deferred to=<%s> relay=[^ ]*%s\]?:%d dsn=4\.\d+\.\d+ status=deferred" % (
        re.escape(rcpt), re.escape(pf.ip), pf.port))
    line = hits[0]
    assert "535" in line and "5.7.8" in line, "the delivery log does not show Postfix's 535 reply: %s" % line
    # Postfix saw TLS first, then refused the password.
    pf.wait_log(r"smtpd\[\d+\]: (Anonymous|Untrusted|Trusted|Verified) TLS connection established from")
    pf.wait_log(r"smtpd\[\d+\]: warning: \S+: SASL (PLAIN|LOGIN) authentication failed")
    # Still queued, waiting for a retry a retry_interval later; never bounced.
    time.sleep(1.5)
    out = d.ctl("queue", "list").out
    assert re.search(re.escape(rcpt) + r">?\(R\)", out), out
    qid = out.split()[0]
    shown = d.ctl("queue", "show", qid).out
    assert re.search(r"rcpt 1: state=R \(waiting for remote delivery\) attempts=1 next-try=\d{4}-", shown), shown
    assert "event=bounced" not in d.log("delivery"), d.log("delivery")
    assert not d.message_files("demo@example.test"), "a bounce reached the sender"
    assert len(sink.messages) == before and not [m for m in sink.messages if tok.encode() in m["data"]]
