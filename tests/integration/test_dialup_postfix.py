"""The manual's dial-up scenario end to end, with Debian's Postfix as the ISP.

A private Postfix instance (its own main.cf/master.cf, queue and data directories; nothing
of the system's /etc/postfix used) listens on 127.0.0.50:<free port> and plays the ISP:
- it relays for the site (mynetworks = 127.0.0.0/8): mail for far-away.test goes on to a
  sink on 127.0.0.52 (transport_maps, no DNS);
- it holds the site's mail: relay_domains = site.test, whose transport `isphold` is listed
  in defer_transports, so mail for site.test waits in Postfix's deferred queue ("deferred
  transport") and is recorded by the flush(8) daemon (fast_flush_domains = $relay_domains).
  An ETRN for site.test flushes it, which overrides defer_transports, and Postfix delivers
  it to the site's Tsubame on 127.0.0.51:<port>.

The site is a Tsubame with dialup = yes, everything through the ISP (delivery_mode =
smarthost), and a pull request for site.test (etrn_server, etrn_domains).  While the link is
down nothing goes out; `tsubamectl link up` pushes its outbound mail, sends ETRN, and the
held mail arrives.  `tsubamectl etrn` is tried against the same Postfix by hand.

Needs root (Postfix's master) and /usr/sbin/postfix: skipped with a reason otherwise.  Every
wait is bounded; the instance is stopped at teardown.
"""
import os
import re
import smtplib
import time

import pytest

from delivery_peers import Sink
from postfix_peer import POSTFIX, PrivatePostfix
from tsubame_harness import DEFAULT_ACCOUNTS, DEFAULT_DOMAINS, IS_ROOT, free_port, token, wait_log as harness_wait_log

ISP_IP = "127.0.0.50"
SITE_IP = "127.0.0.51"
SINK_IP = "127.0.0.52"
ISP_NAME = "isp.postfix.test"

MASTER_CF = """\
# written by tests/integration/test_dialup_postfix.py: one inet listener, no chroot
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
isphold   unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
# written by tests/integration/test_dialup_postfix.py: an ISP that holds mail for site.test
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
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
# the customer's domain: accepted from anyone, held until the customer asks (ETRN)
relay_domains = site.test
fast_flush_domains = $relay_domains
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_etrn_restrictions = permit_mynetworks, reject
transport_maps = texthash:{top}/etc/transport
defer_transports = isphold
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtp_dns_support_level = disabled
smtp_host_lookup = native
maximal_queue_lifetime = 1h
biff = no
maillog_file = {top}/maillog
maillog_file_prefixes = {top}
"""

TRANSPORT = """\
site.test      isphold:[{site_ip}]:{site_port}
far-away.test  smtp:[{sink_ip}]:{sink_port}
"""


def need_postfix():
    if not os.access(POSTFIX, os.X_OK):
        pytest.skip("%s is missing (scripts/install-deps.sh test installs postfix)" % POSTFIX)
    if not IS_ROOT:
        pytest.skip("a private Postfix instance needs root (its master starts as root)")


class PostfixIsp(PrivatePostfix):
    def __init__(self, top, site_port, sink_port):
        super().__init__(top, ISP_IP)
        self.write_etc("main.cf", MAIN_CF.format(top=top, name=ISP_NAME))
        self.write_etc("master.cf", MASTER_CF.format(ip=self.ip, port=self.port))
        self.write_etc("transport", TRANSPORT.format(site_ip=SITE_IP, site_port=site_port, sink_ip=SINK_IP,
                                                     sink_port=sink_port))

    def send(self, sender, rcpt, tok):
        body = ("From: <%s>\r\nTo: <%s>\r\nSubject: held by the ISP %s\r\n\r\nheld %s\r\n" % (sender, rcpt, tok, tok))
        with smtplib.SMTP(self.ip, self.port, local_hostname="internet.example", timeout=20) as s:
            refused = s.sendmail(sender, [rcpt], body)
            assert not refused, refused


@pytest.fixture(scope="module")
def isp(base_dir):
    """(postfix, sink, site_port): the ISP on 127.0.0.50, its onward sink on 127.0.0.52."""
    need_postfix()
    top = os.path.join(base_dir, "postfix-isp-%d" % os.getpid())
    sink = Sink(SINK_IP)
    site_port = free_port(SITE_IP)
    pf = PostfixIsp(top, site_port, sink.port)
    try:
        pf.start()
        yield pf, sink, site_port
    finally:
        pf.stop()
        sink.stop()


def wait_log(d, pattern, name="main", timeout=20.0):
    return harness_wait_log(d, pattern, name, timeout)


def site(make_daemon, pf, site_port, **extra):
    params = {
        "listen": "127.0.0.1:%d %s:%d" % (site_port, SITE_IP, site_port),
        "dialup": "yes",
        "delivery_mode": "smarthost",
        "smarthost": "%s:%d" % (pf.ip, pf.port),
        "smtp_tls": "none",
        "etrn_server": "%s:%d" % (pf.ip, pf.port),
        "etrn_domains": "site.test",
        "etrn_tls": "none",
        "retry_interval": "1",
        "queue_timer": "0",
        "link_hold_open": "30",
        "smtp_timeout": "10",
        "smtp_connect_timeout": "5",
    }
    params.update({k: str(v) for k, v in extra.items()})
    d = make_daemon(params=params, start=False, port=site_port, domains=DEFAULT_DOMAINS + "site.test\n",
                    accounts=DEFAULT_ACCOUNTS + [("user@site.test", "user-pass", [])])
    d.write_table("relay", "127.0.0.1 true\n")
    d.start()
    return d


def test_dialup_site_with_postfix_isp(make_daemon, isp):
    pf, sink, site_port = isp
    d = site(make_daemon, pf, site_port)
    held, out = token(), token()
    # The Internet sends mail for the site to its ISP, which holds it: nobody asked for it yet.
    pf.send("friend@internet.example", "user@site.test", held)
    pf.wait_log(r"to=<user@site\.test>, relay=none, .*status=deferred \(deferred transport\)")
    # The site has mail for the Internet, but its link is down.
    d.send(["someone@far-away.test"], "Subject: out %s\r\n\r\nout %s\r\n" % (out, out), sender="boss@client.test")
    time.sleep(3)                               # retry_interval 1 s: three chances, none taken
    assert not [m for m in sink.messages if out.encode() in m["data"]], "sent while the link was down"
    assert "from=<boss@client.test>" not in pf.log(), "the ISP saw the site's mail while the link was down"
    assert not d.message_files("user@site.test"), "held mail arrived before any ETRN"
    assert "remote recipients queued: 1" in d.ctl("link", "status").out

    # The link comes up: push, then the pull request, then the ISP delivers.
    up = d.ctl("link", "up").out
    assert up.startswith("link up: 1 message (1 remote recipient) pushed; 1 pull request (ETRN) sent to"), up
    assert sink.wait(lambda: [m for m in sink.messages if out.encode() in m["data"]], 20), pf.log()[-3000:]
    wait_log(d, r"event=etrn peer=%s\[%s\]:%d arg=site\.test code=250 outcome=accepted" % (
        re.escape(pf.ip), re.escape(pf.ip), pf.port))
    got = d.wait_for_token("user@site.test", held, timeout=30)
    assert len(got) == 1
    assert b"by %s (Postfix" % ISP_NAME.encode() in got[0], got[0][:1500]
    pf.wait_log(r"to=<user@site\.test>, relay=%s\[%s\]:%d, .*status=sent" % (re.escape(SITE_IP), re.escape(SITE_IP),
                                                                         site_port))
    pf.wait_log(r"to=<someone@far-away\.test>, relay=%s\[%s\]:%d, .*status=sent" % (
        re.escape(SINK_IP), re.escape(SINK_IP), sink.port))
    st = d.ctl("link", "status").out
    assert "received 1 message, delivered 1 recipient locally, sent 1 recipient" in st, st
    assert "pull requests to %s:%d: 1 accepted, 0 failed, 0 pending" % (pf.ip, pf.port) in st, st
    assert re.search(r"line held open: \d+ s more", st), st

    # The link goes down; the ISP holds new mail again, and tsubamectl etrn asks for it by hand.
    d.ctl("link", "down")
    held2 = token()
    pf.send("friend@internet.example", "user@site.test", held2)
    time.sleep(1)
    assert not d.find("user@site.test", held2)
    cp = d.ctl("etrn", "%s:%d" % (pf.ip, pf.port), "site.test", check=False)
    assert cp.returncode == 0, (cp.returncode, cp.out, cp.err)
    assert re.fullmatch(r"site\.test: 250 .*\n", cp.out), cp.out
    d.wait_for_token("user@site.test", held2, timeout=30)
    # Postfix refuses ETRN for a domain it does not hold mail for.
    cp = d.ctl("etrn", "%s:%d" % (pf.ip, pf.port), "other.test", check=False)
    assert cp.returncode == 1, (cp.returncode, cp.out, cp.err)
    assert re.match(r"other\.test: 459 ", cp.out), cp.out
