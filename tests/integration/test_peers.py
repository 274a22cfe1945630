"""E7 peer servers end to end: three Tsubame instances on 127.0.0.41-43 (one port number) share the
domain itch.test, each with part of its users, and one peers file naming all three (each skips
itself).  Mail for every user, sent to any of them, lands on the server that has the user; an
unknown user is refused; a peer that is down means 4xx and retry, never a bounce; peers never
probe each other in a circle (seed 004 "對等服務器")."""
import re
import time

import pytest

from tsubame_harness import free_port, wait_log

HOSTS = ["127.0.0.41", "127.0.0.42", "127.0.0.43"]
USERS = [["a1@itch.test"], ["b2@itch.test"], ["c3@itch.test", "c4@itch.test"]]
SENDER = "zed@outside.test"


@pytest.fixture
def peers(make_daemon):
    port = free_port(HOSTS[0])
    table = "# one file for the whole group (each server skips itself)\nitch.test %s\n" % " ".join(
        "%s:%d" % (h, port) for h in HOSTS)
    sites = []
    for i, host in enumerate(HOSTS):
        params = {
            "retry_interval": "1",
            "smtp_timeout": "3",
            "smtp_connect_timeout": "2",
            "verify_timeout": "10",
            "verify_tempfail_ttl": "2",
            "delivery_port": str(port),
            # the third server answers VRFY with 252: its peers fall back to a RCPT probe
            "vrfy_expn": "no" if i == 2 else "yes",
        }
        d = make_daemon(params=params, start=False, host=host, port=port, domains="itch.test\n",
                        accounts=[(u, "pw-" + u.split("@")[0], []) for u in USERS[i]], aliases="")
        d.write_table("peers", table)
        d.start()
        sites.append(d)
    return sites


def body(tok):
    return ("From: %s\r\nSubject: peers %s\r\nMessage-ID: <%s@outside.test>\r\n\r\n%s\r\n"
            % (SENDER, tok, tok, tok)).encode()


def owner(user):
    return next(i for i, us in enumerate(USERS) if user in us)



def test_each_user_lands_on_its_own_server(peers):
    rcpts = ["a1@itch.test", "b2@itch.test", "c3@itch.test"]
    for i, d in enumerate(peers):
        d.send(rcpts, body("tokpeer%d" % i), sender=SENDER)
    for user in rcpts:
        home = peers[owner(user)]
        for i in range(len(peers)):
            home.wait_for_token(user, "tokpeer%d" % i)
        for j, other in enumerate(peers):
            if j != owner(user):
                assert not other.message_files(user), "%s also on server %d" % (user, j)
    time.sleep(1.0)
    for user in rcpts:
        assert len(peers[owner(user)].message_files(user)) == 3, user
    first = peers[0].log()
    # b2 found with VRFY at .42; c3 with a RCPT probe at .43 (VRFY off there)
    assert re.search(r"event=verify_probe host=127\.0\.0\.42 .*to=<b2@itch\.test> result=found reply=250 stage=vrfy",
                     first), first[-3000:]
    assert re.search(r"event=verify_probe host=127\.0\.0\.43 .*to=<c3@itch\.test> result=found reply=250 stage=rcpt",
                     first), first[-3000:]
    # the forced route: delivered to the peer itself, not through the domain's MX
    assert re.search(r"event=delivered to=<b2@itch\.test> relay=127\.0\.0\.42\[127\.0\.0\.42\]", peers[0].log("delivery"))
    for d in peers:
        assert "event=bounced" not in d.log("delivery")


def test_unknown_user_refused_and_no_probe_circle(peers):
    for d in peers:
        with d.session() as s:
            s.ehlo()
            s.expect("MAIL FROM:<%s>" % SENDER, "250")
            r = s.cmd("RCPT TO:<nobody@itch.test>", timeout=20)
            assert r.code == 550 and r.enh() == "5.1.1", (d.host, r)
    time.sleep(0.5)
    # each server asked its two peers once; the peers answered from their own tables
    for d in peers:
        assert len(re.findall(r"event=verify_probe [^\n]*to=<nobody@itch\.test>", d.log())) == 2, d.log()[-3000:]
    # .43 has VRFY off: the others' RCPT probes carried the marker and started no lookup there
    assert re.search(r"event=peer_lookup_skipped reason=peer_probe .*to=<nobody@itch\.test>", peers[2].log())
    # a session from a peer's own address never starts a lookup either
    with peers[1].session(source="127.0.0.41") as s:
        s.ehlo()
        s.expect("MAIL FROM:<%s>" % SENDER, "250")
        r = s.cmd("RCPT TO:<ghost@itch.test>", timeout=20)
        assert r.code == 550 and r.enh() == "5.1.1", r
    assert re.search(r"event=peer_lookup_skipped reason=client_is_peer client=127\.0\.0\.41", peers[1].log())
    assert "to=<ghost@itch.test>" not in "".join(l for l in peers[1].log().splitlines() if "verify_probe" in l)


def test_peer_down_means_retry_never_bounce(peers):
    first, third = peers[0], peers[2]
    first.send("c3@itch.test", body("tokdown1"), sender=SENDER)
    third.wait_for_token("c3@itch.test", "tokdown1")
    assert not third.stop()
    # c3 is known (the cache): accepted, queued for .43, deferred while it is down
    first.send("c3@itch.test", body("tokdown2"), sender=SENDER)
    wait_log(first, r"event=deferred to=<c3@itch\.test> relay=127\.0\.0\.43", name="delivery")
    # c4 was never asked about: nobody can say, so the sender must try again (4xx, not 5xx)
    with first.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<%s>" % SENDER, "250")
        r = s.cmd("RCPT TO:<c4@itch.test>", timeout=20)
        assert r.code == 451 and r.enh() == "4.4.1", r
        # a user nobody has while one peer is down: still 4xx (it may be on the one that is down)
        r = s.cmd("RCPT TO:<nobody@itch.test>", timeout=20)
        assert r.code == 451 and r.enh() == "4.4.1", r
    time.sleep(1.5)
    assert "event=bounced" not in first.log("delivery")
    third.start()
    first.ctl("queue", "flush")
    third.wait_for_token("c3@itch.test", "tokdown2")
    # and c4 is found once its server is back (the failure was remembered for verify_tempfail_ttl only)
    time.sleep(1.0)
    deadline = time.monotonic() + 40
    while True:
        with first.session() as s:
            s.ehlo()
            s.expect("MAIL FROM:<%s>" % SENDER, "250")
            r = s.cmd("RCPT TO:<c4@itch.test>", timeout=20)
        if r.code == 250 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.code == 250, r
    time.sleep(1.0)
    assert len(third.find("c3@itch.test", "tokdown2")) == 1
    assert "event=bounced" not in first.log("delivery")
