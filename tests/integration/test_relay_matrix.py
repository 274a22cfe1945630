"""The relay matrix (R4, issue 3): tables I-V of the manual, cell for cell, over real SMTP sessions.

One golden table (GOLDEN below, transcribed from docs/relay.md) gives, for every table and
for unauthenticated / authenticated sessions, which recipient class each sender class may
reach.  One daemon runs per rules file (module-scoped, parametrized fixture); the client IP
the daemon sees is chosen by binding the client socket to 127.0.0.x before connecting.

Classes:  sender   local-acct  demo@example.test (smtp-auth flag 0, so level 3 asks no AUTH)
                   local-none  ghost@example.test
                   external    someone@outside.test
          recipient local-acct demo@example.test, local-none nobody@example.test,
                   external    friend@elsewhere.test
"""

import os
import subprocess
import time

import pytest

from tsubame_harness import Daemon, finish, qid_of, token

LISTED = "127.0.0.9"
UNLISTED = "127.0.0.20"
AUTH_USER, AUTH_PASS = "bob@example.test", "bob-pass"

SENDERS = {
    "local-acct": "demo@example.test",
    "local-none": "ghost@example.test",
    "external": "someone@outside.test",
}
RCPTS = {
    "local-acct": "demo@example.test",
    "local-none": "nobody@example.test",
    "external": "friend@elsewhere.test",
}
SCLASSES = ("local-acct", "local-none", "external")
RCLASSES = ("local-acct", "local-none", "external")

# ---------------------------------------------------------------------------
# THE GOLDEN TABLE.  Each entry: three rows (sender local-acct, local-none, external), each
# row three cells (recipient local-acct, local-none, external); o = accepted, x = refused.
GOLDEN = {
    # unauthenticated sessions: the manual's tables
    ("I", False):       ("oxo", "xxx", "oxx"),
    ("II", False):      ("oxo", "oxo", "oxo"),
    ("III", False):     ("xxx", "xxx", "xxx"),
    ("IV", False):      ("oxx", "xxx", "oxx"),
    ("IV,0", False):    ("oxx", "xxx", "oxx"),
    ("IV,2", False):    ("oxx", "xxx", "oxx"),
    ("V", False):       ("oxo", "xxx", "oxx"),     # the only-rule matched: table I
    ("V-other", False): ("xxx", "xxx", "oxx"),
    # authenticated sessions (note 1 / docs/relay.md "Authentication")
    ("I", True):        ("oxo", "oxo", "oxo"),
    ("II", True):       ("oxo", "oxo", "oxo"),
    ("III", True):      ("xxx", "xxx", "xxx"),
    ("IV", True):       ("oxo", "oxo", "oxo"),     # plain norelay: AUTH may relay
    ("IV,0", True):     ("oxx", "xxx", "oxx"),     # norelay,0: not even with AUTH
    ("IV,2", True):     ("oxx", "xxx", "oxx"),     # norelay,2: the rule wins over AUTH
    ("V", True):        ("oxo", "oxo", "oxo"),
    ("V-other", True):  ("oxo", "oxo", "oxo"),
}

# rules file -> (its text, table for the LISTED client, table for the UNLISTED client)
RULES = {
    "none":      ("", "I", "I"),
    "default":   ("127.0.0.9 default\n", "I", "I"),
    "true":      ("127.0.0.9 true\n", "II", "I"),
    "bare":      ("# no action means true\n127.0.0.8/30\n", "II", "I"),
    "false":     ("127.0.0.9/32 false\n", "III", "I"),
    "norelay":   ("127.0.0.9 norelay\n", "IV", "I"),
    "norelay0":  ("127.0.0.9 norelay,0\n", "IV,0", "I"),
    "norelay2":  ("127.0.0.9 norelay,2\n", "IV,2", "I"),
    # "only" ends the list: the lines after it (a rule for UNLISTED, even a broken line) have no effect
    "only":      ("127.0.0.9 only\n127.0.0.20 true\nthis line is not a rule at all\n", "V", "V-other"),
}

ACCOUNTS = [
    ("demo@example.test", "demo-pass", ["-a", "0"]),   # local sender with account, no AUTH demanded
    ("bob@example.test", "bob-pass", []),              # the user the AUTH columns log in as
]


def reply_for(cell, rclass):
    """The exact reply to RCPT for a cell value 'o'/'x' and a recipient class."""
    addr = RCPTS[rclass]
    if cell == "o":
        return "250 2.1.5 Ok"
    if rclass == "local-none":
        return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % addr
    if rclass == "external":
        return "550 5.7.1 <%s>: Relaying denied" % addr
    return "550 5.7.1 <%s>: Access denied" % addr


def expected(rules, ip, auth, sclass, rclass):
    _, listed, unlisted = RULES[rules]
    table = listed if ip == LISTED else unlisted
    row = GOLDEN[(table, auth)][SCLASSES.index(sclass)]
    return row[RCLASSES.index(rclass)]


def new_site(base_dir, name, relay, params=None, accounts=ACCOUNTS):
    p = {"auth_plaintext": "yes", "auth_failure_delay": "0"}
    if params:
        p.update(params)
    d = Daemon(base_dir, name=name, params=p, accounts=accounts)
    d.write_table("relay", relay)
    d.start()
    return d


def rcpt_replies(d, ip, sender, rcpts, auth=False, mail_reply="250 2.1.0"):
    """One session from ip: [AUTH], MAIL FROM:<sender>, RCPT for each of rcpts; the RCPT replies."""
    with d.session(source=ip) as s:
        s.ehlo()
        if auth:
            r = s.auth_plain(AUTH_USER, AUTH_PASS)
            assert r.startswith("235 2.7.0"), r
        s.expect("MAIL FROM:<%s>" % sender, mail_reply)
        if not mail_reply.startswith("250"):
            return []
        out = [s.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        s.expect("QUIT", "221")
        return out


@pytest.fixture(scope="module", params=list(RULES))
def matrix_site(base_dir, request):
    d = new_site(base_dir, "relay-" + request.param, RULES[request.param][0])
    d.rules_name = request.param
    yield d
    finish(d)


def check_alive(d):
    assert d.running(), "tsubamed died:\n%s" % d.tail()


# ---------------------------------------------------------------------------
# every cell


@pytest.mark.parametrize("rclass", RCLASSES)
@pytest.mark.parametrize("sclass", SCLASSES)
@pytest.mark.parametrize("auth", [False, True], ids=["noauth", "auth"])
@pytest.mark.parametrize("ip", [LISTED, UNLISTED], ids=["listed", "unlisted"])
def test_relay_matrix_cell(matrix_site, ip, auth, sclass, rclass):
    d = matrix_site
    want = reply_for(expected(d.rules_name, ip, auth, sclass, rclass), rclass)
    (r,) = rcpt_replies(d, ip, SENDERS[sclass], [RCPTS[rclass]], auth=auth)
    _, listed, unlisted = RULES[d.rules_name]
    assert r.startswith(want), "rules %r, client %s (table %s), auth=%s, %s -> %s: got %r, want %r" % (
        d.rules_name, ip, listed if ip == LISTED else unlisted, auth, SENDERS[sclass], RCPTS[rclass], r, want)
    check_alive(d)


def relay_check_available(d):
    cp = d.ctl("relay", "check", "127.0.0.1", "a@outside.test", "demo@example.test", check=False)
    if cp.returncode == 2 or "usage:" in cp.err:
        pytest.skip("`tsubamectl relay check` is not available in this build (rc %d: %s)" % (
            cp.returncode, (cp.err or cp.out).strip().splitlines()[0] if (cp.err or cp.out).strip() else ""))


def test_relay_check_agrees_with_golden_table(matrix_site):
    """`tsubamectl relay check` gives the same decision as the daemon for every cell, and names the table."""
    d = matrix_site
    relay_check_available(d)
    bad = []
    for ip in (LISTED, UNLISTED):
        for auth in (False, True):
            for sc in SCLASSES:
                for rc in RCLASSES:
                    want = expected(d.rules_name, ip, auth, sc, rc)
                    args = ["relay", "check", ip, SENDERS[sc], RCPTS[rc]] + (["--auth"] if auth else [])
                    cp = d.ctl(*args, check=False)
                    first = cp.out.splitlines()[0] if cp.out else ""
                    ok = (cp.returncode == 0 and first == "accept") if want == "o" else (
                        cp.returncode == 1 and first.startswith("reject"))
                    if not ok:
                        bad.append("%s -> rc %d %r (want %s)" % (" ".join(args), cp.returncode, cp.out, want))
    assert not bad, "\n".join(bad)


def test_relay_check_names_the_rule(matrix_site):
    d = matrix_site
    relay_check_available(d)
    cp = d.ctl("relay", "check", LISTED, "someone@outside.test", "friend@elsewhere.test", check=False)
    _, listed, _ = RULES[d.rules_name]
    table = {"IV,0": "IV", "IV,2": "IV"}.get(listed, listed)
    assert "table: %s" % table in cp.out, cp.out
    if d.rules_name == "none":
        assert "built-in default (table I)" in cp.out, cp.out
    else:
        assert "rule: " in cp.out and ":" in cp.out.split("rule: ", 1)[1], cp.out


# ---------------------------------------------------------------------------
# sender patterns: domains and addresses (compared with the envelope sender, never the client)

SENDER_RULES = (
    "trusted.test true\n"
    "blocked.test false\n"
    "bad@vip.test false\n"
    "vip@vip.test\n"
    "nr.test norelay\n"
)


@pytest.fixture(scope="module")
def sender_site(base_dir):
    d = new_site(base_dir, "relay-senders", SENDER_RULES)
    yield d
    finish(d)


ACC = "250 2.1.5 Ok"
DEN_LOCAL = "550 5.7.1 <demo@example.test>: Access denied"
DEN_RELAY = "550 5.7.1 <friend@elsewhere.test>: Relaying denied"


@pytest.mark.parametrize("sender,to_local,to_external", [
    ("x@trusted.test", ACC, ACC),               # domain true: table II
    ("X@TRUSTED.TEST", ACC, ACC),               # case-insensitive
    ("x@sub.trusted.test", ACC, DEN_RELAY),     # not subdomains: table I
    ("x@blocked.test", DEN_LOCAL, DEN_RELAY),   # domain false: table III
    ("vip@vip.test", ACC, ACC),                 # address (no action = true)
    ("VIP@vip.test", ACC, ACC),
    ("other@vip.test", ACC, DEN_RELAY),         # another address of that domain: table I
    ("bad@vip.test", DEN_LOCAL, DEN_RELAY),     # address false
    ("x@nr.test", ACC, DEN_RELAY),              # domain norelay: table IV
    ("x@outside.test", ACC, DEN_RELAY),         # nothing matched: table I
])
def test_sender_pattern_rules(sender_site, sender, to_local, to_external):
    for ip in (LISTED, UNLISTED):
        r1, r2 = rcpt_replies(sender_site, ip, sender, ["demo@example.test", "friend@elsewhere.test"])
        assert r1.startswith(to_local), (ip, sender, r1)
        assert r2.startswith(to_external), (ip, sender, r2)


def test_sender_patterns_with_auth(sender_site):
    # false wins over AUTH; true/norelay/nothing: AUTH relays
    for sender, ext in (("x@blocked.test", DEN_RELAY), ("bad@vip.test", DEN_RELAY), ("x@nr.test", ACC),
                        ("x@outside.test", ACC)):
        (r,) = rcpt_replies(sender_site, UNLISTED, sender, ["friend@elsewhere.test"], auth=True)
        assert r.startswith(ext), (sender, r)


# ---------------------------------------------------------------------------
# the specials: #blank #<> (null sender), #number, #host, #nodomain, with false and with true

SPECIAL_SENDERS = {
    "": ("#blank", "#<>"),
    "user@[192.0.2.1]": ("#number",),
    "user@192.0.2.1": ("#number",),
    "user@[IPv6:2001:db8::1]": ("#number",),
    "user@12345": ("#number", "#host"),        # docs/relay.md ambiguity 9: both
    "user@localhost": ("#host",),
    "user@outside.test": (),                   # control: no special matches
}
SPECIALS = ["#blank", "#<>", "#number", "#host", "#nodomain"]


@pytest.fixture(scope="module", params=[(sp, act) for sp in SPECIALS for act in ("false", "true")],
                ids=lambda p: "%s-%s" % p)
def special_site(base_dir, request):
    special, action = request.param
    d = new_site(base_dir, "relay-special", "%s %s\n" % (special, action))
    d.special, d.action = request.param
    yield d
    finish(d)


@pytest.mark.parametrize("sender", list(SPECIAL_SENDERS), ids=lambda s: s or "null")
def test_special_sender_rules(special_site, sender):
    d = special_site
    matched = d.special in SPECIAL_SENDERS[sender]
    if not matched:
        want = (ACC, DEN_RELAY)              # table I, external sender
    elif d.action == "false":
        want = (DEN_LOCAL, DEN_RELAY)        # table III
    else:
        want = (ACC, ACC)                    # table II
    r1, r2 = rcpt_replies(d, UNLISTED, sender, ["demo@example.test", "friend@elsewhere.test"])
    assert r1.startswith(want[0]) and r2.startswith(want[1]), (d.special, d.action, sender, r1, r2, want)


def test_nodomain_sender_refused_at_mail(special_site):
    """A sender without a domain never gets as far as the rules: 553 5.1.7 at MAIL, even with '#nodomain true'."""
    d = special_site
    with d.session(source=UNLISTED) as s:
        s.ehlo()
        s.expect("MAIL FROM:<user>", "553 5.1.7")
        s.expect("RCPT TO:<friend@elsewhere.test>", "503 5.5.1")


def test_nodomain_special_in_relay_check(special_site):
    d = special_site
    if d.special != "#nodomain":
        pytest.skip("only for the #nodomain rules files")
    relay_check_available(d)
    cp = d.ctl("relay", "check", UNLISTED, "user", "friend@elsewhere.test", check=False)
    assert cp.returncode == (0 if d.action == "true" else 1), (cp.returncode, cp.out, cp.err)
    assert "#nodomain" in cp.out, cp.out


# ---------------------------------------------------------------------------
# security levels (R3) and norelay,2 waiving the AUTH demand

LEVEL_ACCOUNTS = [
    ("demo@example.test", "demo-pass", []),            # smtp-auth flag 1 (the default)
    ("noflag@example.test", "noflag-pass", ["-a", "0"]),
    ("bob@example.test", "bob-pass", []),
    ("carol@other.test", "carol-pass", []),            # other.test has the host alias mail.other.test
]
AUTH_REQUIRED = "530 5.7.0 Authentication required"


@pytest.fixture(scope="module", params=["1", "2", "3"])
def level_site(base_dir, request):
    d = new_site(base_dir, "level" + request.param, "127.0.0.9 norelay,2\n127.0.0.11 norelay\n",
                 params={"security_level": request.param}, accounts=LEVEL_ACCOUNTS)
    d.level = int(request.param)
    yield d
    finish(d)


@pytest.mark.parametrize("sender", ["demo@example.test", "Demo@EXAMPLE.test", "carol@mail.other.test",
                                    "noflag@example.test", "ghost@example.test", "someone@outside.test", ""])
@pytest.mark.parametrize("ip", [UNLISTED, "127.0.0.11", LISTED])
def test_security_level_mail(level_site, ip, sender):
    d = level_site
    flagged = sender.lower() in ("demo@example.test", "carol@mail.other.test")   # accounts with the auth flag
    demanded = {1: False, 2: True, 3: flagged}[d.level]
    if ip == LISTED:
        demanded = False  # norelay,2 waives the level's AUTH demand for this client
    with d.session(source=ip) as s:
        s.ehlo()
        r = s.cmd("MAIL FROM:<%s>" % sender)
        want = AUTH_REQUIRED if demanded else "250 2.1.0"
        assert r.startswith(want), (d.level, ip, sender, r)
        if demanded:
            # the same MAIL works once authenticated
            assert s.auth_plain(AUTH_USER, AUTH_PASS).startswith("235 2.7.0")
            s.expect("MAIL FROM:<%s>" % sender, "250 2.1.0")


def test_norelay2_waiver_still_no_relay(level_site):
    """The waived client may mail local accounts but not relay, with or without AUTH."""
    d = level_site
    r1, r2 = rcpt_replies(d, LISTED, "someone@outside.test", ["demo@example.test", "friend@elsewhere.test"])
    assert r1.startswith(ACC) and r2.startswith(DEN_RELAY), (r1, r2)
    (r,) = rcpt_replies(d, LISTED, "someone@outside.test", ["friend@elsewhere.test"], auth=True)
    assert r.startswith(DEN_RELAY), r
    # plain norelay: AUTH relays
    (r,) = rcpt_replies(d, "127.0.0.11", "someone@outside.test", ["friend@elsewhere.test"], auth=True)
    assert r.startswith(ACC), r


def test_level3_forged_local_sender_cannot_relay(level_site):
    """Default level 3: a stranger using a local account (flag 1) as sender is stopped at MAIL."""
    d = level_site
    if d.level == 1:
        pytest.skip("level 1 demands no AUTH by definition")
    with d.session(source=UNLISTED) as s:
        s.ehlo()
        s.expect("MAIL FROM:<demo@example.test>", AUTH_REQUIRED)
        s.expect("RCPT TO:<friend@elsewhere.test>", "503 5.5.1")


# ---------------------------------------------------------------------------
# the classic open-relay battery from an unlisted client without AUTH (also with a rules file
# that trusts another client), and nothing queued for a remote recipient afterwards

BATTERY = [
    "friend%elsewhere.test@example.test",          # percent hack
    "elsewhere.test!friend@example.test",          # bang path
    "elsewhere.test!friend",
    "@example.test:friend@elsewhere.test",         # source route: the mailbox is elsewhere
    "@example.test,@example.test:friend@elsewhere.test",
    '"friend@elsewhere.test"@example.test',        # quoted local part with @
    '"friend%elsewhere.test"@example.test',
    "friend@elsewhere.test@example.test",          # user@outside@local
    "friend@elsewhere.test.",                      # trailing dot
    "friend@elsewhere.test..",
    "FRIEND@ELSEWHERE.TEST",                       # upper case
    "Friend@ElseWhere.Test",
    "friend@[127.0.0.1]",                          # IP literals
    "friend@[192.0.2.1]",
    "friend@[IPv6:::1]",
    "friend@127.0.0.1",
    "friend@example.test.elsewhere.test",          # local domain as a prefix
    "friend@xexample.test",                        # and as a suffix
    "friend@localhost",
    "friend",
]


@pytest.fixture(scope="module")
def battery_site(base_dir):
    d = new_site(base_dir, "relay-battery", "127.0.0.9 true\n", params={"max_errors": "1000"})
    yield d
    finish(d)


@pytest.mark.parametrize("sender", ["someone@outside.test", "ghost@example.test", ""],
                         ids=["external", "local-none", "null"])
def test_open_relay_battery(battery_site, sender):
    d = battery_site
    with d.session(source=UNLISTED) as s:
        s.ehlo()
        bad = []
        for addr in BATTERY:
            s.expect("MAIL FROM:<%s>" % sender, "250 2.1.0")
            r = s.cmd("RCPT TO:<%s>" % addr)
            if not (500 <= r.code < 600 and (r.enh() or "").startswith("5.")):
                bad.append("%s -> %r" % (addr, r))
            # whatever happened, no message can be sent to it
            r = s.cmd("DATA")
            if r.code == 354:
                s.send("Subject: relay test\r\n\r\nx\r\n.\r\n")
                bad.append("%s: DATA accepted, then %r" % (addr, s.reply()))
            s.expect("RSET", "250")
        assert not bad, "\n".join(bad)
    time.sleep(0.2)
    out = d.ctl("queue", "list").out
    assert "(R)" not in out and "elsewhere" not in out.lower(), out
    check_alive(d)


def test_listed_client_relays_and_queues(battery_site):
    """Control for the battery: the listed client really can relay; the message waits as (R)."""
    d = battery_site
    tok = token()
    with d.session(source=LISTED) as s:
        s.ehlo()
        s.expect("MAIL FROM:<someone@outside.test>", "250 2.1.0")
        s.expect("RCPT TO:<friend@elsewhere.test>", "250 2.1.5")
        s.expect("DATA", "354")
        s.send("Subject: %s\r\n\r\nx\r\n.\r\n" % tok)
        qid = qid_of(s.reply())
        assert qid
    out = d.ctl("queue", "list").out
    assert qid in out and "friend@elsewhere.test(R)" in out, out
    d.ctl("queue", "delete", qid)


# ---------------------------------------------------------------------------
# SIGHUP reloads the rules; a broken file is refused as a whole (the old rules stay)


def external_reply(d, ip):
    (r,) = rcpt_replies(d, ip, "someone@outside.test", ["friend@elsewhere.test"])
    return r


def wait_reply(d, ip, prefix, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        r = external_reply(d, ip)
        if r.startswith(prefix) or time.monotonic() >= deadline:
            return r
        time.sleep(0.1)


def test_rules_reloaded_on_sighup(base_dir):
    d = new_site(base_dir, "relay-reload", "")
    try:
        assert external_reply(d, LISTED).startswith(DEN_RELAY)
        d.write_table("relay", "127.0.0.9 true\n")
        d.signal(1)  # SIGHUP
        r = wait_reply(d, LISTED, ACC)
        assert r.startswith(ACC), "rules not reloaded after SIGHUP: %r" % r
        # a file with an error is refused as a whole: 127.0.0.9 keeps relaying
        d.write_table("relay", "127.0.0.9 false\n256.1.1.1 true\n")
        d.signal(1)
        time.sleep(1.0)
        assert external_reply(d, LISTED).startswith(ACC), "a broken rules file replaced the old rules"
        assert d.running()
    finally:
        finish(d)
