"""The manual's dial-up scenario end to end with Tsubame on both sides (seeds 000, 001, 004).

- The ISP: a Tsubame on 127.0.0.60 that holds mail for site.test (hold table: the site may
  release it with ETRN, from its address; route= the site's listener) and relays the site's
  outbound mail to the rest of the world (a sink on 127.0.0.62, through the gateway table).
- The site: a Tsubame on 127.0.0.61 with its own domain site.test, dialup = yes, everything out
  through the ISP (delivery_mode = smarthost) and a pull request for site.test.

While the link is down nothing leaves the site and the ISP keeps site.test's mail; `tsubamectl
link up` at the site pushes its outbound mail through the ISP, then sends ETRN, and the held mail
arrives in the site's mailbox.  Loopback only, every wait bounded.
"""
import re
import time

import pytest

from delivery_peers import Sink
from tsubame_harness import free_port, token, wait_log

ISP_IP, SITE_IP, WORLD_IP = "127.0.0.60", "127.0.0.61", "127.0.0.62"


@pytest.fixture
def world():
    s = Sink(WORLD_IP)
    yield s
    s.stop()


def body(tok, to):
    return ("From: someone@outside.test\r\nTo: %s\r\nSubject: dial-up %s\r\nMessage-ID: <%s@outside.test>\r\n\r\n"
            "%s\r\n" % (to, tok, tok, tok)).encode()



def make_pair(make_daemon, world):
    isp_port, site_port = free_port(ISP_IP), free_port(SITE_IP)
    common = {"retry_interval": "1", "smtp_timeout": "5", "smtp_connect_timeout": "2"}
    isp = make_daemon(params=dict(common, hostname="isp.test"), start=False, host=ISP_IP, port=isp_port,
                      domains="isp.test\n", accounts=[("postmaster@isp.test", "pw-isp", [])], aliases="")
    # The site's outgoing connections leave from 127.0.0.1 (its own default source address on
    # loopback), so that is the address the ISP trusts for relaying and ETRN.
    isp.write_table("hold", "site.test allow=127.0.0.1,%s route=%s:%d\n" % (SITE_IP, SITE_IP, site_port))
    isp.write_table("relay", "127.0.0.1 true\n%s true\n" % SITE_IP)
    isp.write_table("gateways", "far-away.test,%s,%d\n" % (WORLD_IP, world.port))
    isp.start()
    site = make_daemon(params=dict(common, hostname="mail.site.test", dialup="yes", delivery_mode="smarthost",
                                   smarthost="%s:%d" % (ISP_IP, isp_port), etrn_server="%s:%d" % (ISP_IP, isp_port),
                                   etrn_domains="site.test", link_hold_open="30", auth_plaintext="yes"),
                       start=False, host=SITE_IP, port=site_port, domains="site.test\n",
                       accounts=[("user@site.test", "pw-user", [])], aliases="")
    site.write_table("relay", "127.0.0.0/8 true\n")
    site.start()
    return isp, site


def test_dialup_site_and_isp_both_tsubame(make_daemon, world):
    isp, site = make_pair(make_daemon, world)
    held, out = token(), token()
    isp.send("user@site.test", body(held, "user@site.test"), sender="friend@outside.test")
    with site.smtp() as s:    # a local sender logs in (security level 3)
        s.ehlo()
        s.login("user@site.test", "pw-user")
        assert not s.sendmail("user@site.test", ["someone@far-away.test"], body(out, "someone@far-away.test"))
    # link down: the site sends nothing, the ISP keeps site.test's mail
    time.sleep(3.0)
    assert not world.messages
    assert not site.message_files("user@site.test")
    assert "user@site.test(R)" in isp.ctl("queue", "list").out
    assert re.search(r"someone@far-away\.test>?\(R", site.ctl("queue", "list").out)
    # the link comes up: push, then pull
    up = site.ctl("link", "up").out
    assert "pushed" in up, up
    world.wait_messages(1, timeout=20)
    assert out.encode() in world.messages[0]["data"]
    wait_log(site, r"event=etrn peer=[^ ]*%s[^ ]* arg=site\.test code=253 outcome=accepted" % re.escape(ISP_IP))
    got = site.wait_for_token("user@site.test", held, timeout=20)
    assert len(got) == 1
    # the ISP delivered it to the site's listener, and nothing stays queued on either side
    wait_log(isp, r"event=delivered to=<user@site\.test> relay=[^ ]*%s" % re.escape(SITE_IP), name="delivery")
    for d in (isp, site):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and d.ctl("queue", "list").out.strip() not in ("", "0 messages"):
            time.sleep(0.1)
        assert d.ctl("queue", "list").out.strip() in ("", "0 messages"), d.ctl("queue", "list").out


def test_isp_refuses_etrn_from_elsewhere(make_daemon, world):
    """Only the site's address may release site.test: ETRN from another client gets 459."""
    isp, site = make_pair(make_daemon, world)
    isp.send("user@site.test", body(token(), "user@site.test"), sender="friend@outside.test")
    with isp.session(source="127.0.0.63") as s:     # not the site
        s.ehlo()
        s.expect("ETRN site.test", "459 4.7.1")
    time.sleep(1.5)
    assert not site.message_files("user@site.test")
