"""Administration: tsubamectl accounts/domains, import/export, tsubamed -n/-p, SIGHUP, SIGTERM, logs."""

import os
import re
import signal
import subprocess
import time
import warnings

import pytest

from tsubame_harness import HOSTNAME, TSUBAMED, qid_of, token

IMPORT = (
    "alice\tpw-alice\tAlice Example\texample.test\t/home/alice\t1\t0\t0\n"
    "bob2\tpw-bob2\tBob Two\tother.test\t\t0\t1\t50000\n"
    "zoe\tpw-zoe\tZoë Ünïcode\texample.test\t\t1\t1\t1000000\n"
)


def export_rows(text):
    return {tuple(l.split("\t")[:1] + l.split("\t")[3:4]): l.split("\t") for l in text.splitlines() if l.strip()}


def crypt_check(plain, hashed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import crypt
        except ImportError:
            return None
    try:
        return crypt.crypt(plain, hashed) == hashed
    except OSError:
        return None


def test_account_import_export_round_trip(make_daemon):
    d = make_daemon(start=False, aliases="")
    src = os.path.join(d.root, "import.tsv")
    with open(src, "w") as f:
        f.write(IMPORT)
    d.ctl("account", "import", src)
    exp1 = d.ctl("account", "export").out
    rows = export_rows(exp1)
    for line in IMPORT.splitlines():
        f = line.split("\t")
        row = rows.get((f[0], f[3]))
        assert row, (f[0], exp1)
        assert len(row) == 8, row
        assert row[1] != f[1] and row[1].startswith("$"), "password not hashed on export: %r" % row[1]
        assert f[1] not in exp1
        ok = crypt_check(f[1], row[1])
        assert ok in (True, None), "hash of %s does not verify" % f[0]
        assert row[2] == f[2] and row[4] == f[4] and row[5:] == f[5:], (row, f)
    # the accounts created by the harness (demo etc.) are exported too
    assert ("demo", "example.test") in rows
    # re-import the export: hashes are kept, the next export is identical
    again = os.path.join(d.root, "export1.tsv")
    with open(again, "w") as f:
        f.write(exp1)
    d.ctl("account", "import", again)
    exp2 = d.ctl("account", "export").out
    assert exp2 == exp1
    # export to a file gives the same text; import from stdin works too
    out = os.path.join(d.root, "export2.tsv")
    d.ctl("account", "export", out)
    with open(out) as f:
        assert f.read() == exp1
    d.ctl("account", "import", "-", input=exp1.encode())
    assert d.ctl("account", "export").out == exp1


def test_account_import_bad_lines(make_daemon):
    d = make_daemon(start=False, aliases="")
    src = os.path.join(d.root, "bad.tsv")
    with open(src, "w") as f:
        f.write("good1\tpw\tGood\texample.test\t\t0\t0\t0\n"
                "bad1\tpw\tBad\tnot-local.test\t\t0\t0\t0\n"
                "bad2\tpw\n"
                "good2\tpw\tGood Two\texample.test\t\t0\t0\t0\n")
    cp = d.ctl("account", "import", src, check=False)
    assert cp.returncode == 1
    assert re.search(r"bad\.tsv:2:", cp.err) and re.search(r"bad\.tsv:3:", cp.err), cp.err
    listing = d.ctl("account", "list", "example.test").out
    assert "good1" in listing and "good2" in listing and "bad1" not in listing


def test_account_and_domain_commands(make_daemon):
    d = make_daemon(start=False, aliases="")
    d.ctl("domain", "add", "new.test", "-a", "mx.new.test", "--max-accounts", "1")
    assert "new.test" in d.ctl("domain", "list").out
    assert d.ctl("domain", "add", "new.test", check=False).returncode == 1
    d.ctl("account", "add", "first@new.test", "-p", "pw1", "-n", "First User", "-H", "/home/first",
          "-a", "1", "-A", "0", "-l", "123456")
    # --max-accounts 1
    assert d.ctl("account", "add", "second@new.test", "-p", "pw2", check=False).returncode == 1
    show = d.ctl("account", "show", "first@new.test").out
    assert "First User" in show and "/home/first" in show and "123456" in show, show
    assert "first" in d.ctl("account", "list", "new.test").out
    assert "first" in d.ctl("account", "list").out
    before = [l for l in d.ctl("account", "export").out.splitlines() if l.startswith("first\t")][0]
    d.ctl("account", "passwd", "first@new.test", "-p", "newpw")
    after = [l for l in d.ctl("account", "export").out.splitlines() if l.startswith("first\t")][0]
    assert before.split("\t")[1] != after.split("\t")[1]
    assert crypt_check("newpw", after.split("\t")[1]) in (True, None)
    # unknown domain, duplicate account, missing account
    assert d.ctl("account", "add", "x@nowhere.test", "-p", "p", check=False).returncode == 1
    assert d.ctl("account", "add", "first@new.test", "-p", "p", check=False).returncode == 1
    d.ctl("account", "del", "first@new.test")
    assert d.ctl("account", "del", "first@new.test", check=False).returncode == 1
    assert d.ctl("account", "show", "first@new.test", check=False).returncode == 1
    d.ctl("domain", "del", "new.test")
    assert "new.test" not in d.ctl("domain", "list").out
    assert d.ctl("domain", "del", "new.test", check=False).returncode == 1
    # usage errors
    assert d.ctl("account", "frobnicate", check=False).returncode == 2
    assert d.ctl("nonsense", check=False).returncode == 2
    assert d.ctl("account", "add", check=False).returncode == 2
    # the tables it wrote pass the checker
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 0, cp.err


def test_config_check_good(make_daemon):
    d = make_daemon(start=False)
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 0, cp.err


def test_config_check_bad_parameter(make_daemon):
    d = make_daemon(start=False)
    with open(d.conf) as f:
        n = len(f.read().splitlines())
    with open(d.conf, "a") as f:
        f.write("max_sessions = lots\nno_such_parameter = 1\nmax_line_length = 100\n")
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 1, (cp.out, cp.err)
    for ln in (n + 1, n + 2, n + 3):
        assert re.search(r"(^|\n)%s:%d: " % (re.escape(d.conf), ln), cp.err), (ln, cp.err)


@pytest.mark.parametrize("table,text,line", [
    ("domains", "example.test\nother.test max_accounts=abc\n", 2),
    ("domains", "example.test\nother.test colour=blue\n", 2),
    ("aliases", "# c\ninfo@example.test demo@example.test\nnodomain demo@example.test\n", 3),
    ("aliases", "info@example.test\n", 1),
    ("accounts", None, 2),
])
def test_config_check_bad_table_line(make_daemon, table, text, line):
    d = make_daemon(start=False)
    if text is None:
        with open(d.table("accounts")) as f:
            good = f.read().splitlines()
        text = good[0] + "\n" + "broken line without tabs\n"
    d.write_table(table, text)
    cp = d.run_tsubamed("-n", "-c", d.conf)
    assert cp.returncode == 1, (cp.out, cp.err)
    assert re.search(r"%s:%d: " % (re.escape(table), line), cp.err), cp.err


def test_print_parameters(make_daemon):
    d = make_daemon(start=False, params={"max_sessions": "7"})
    cp = d.run_tsubamed("-p", "-c", d.conf)
    assert cp.returncode == 0, cp.err
    assert re.search(r"^max_sessions = 7$", cp.out, re.M), cp.out
    assert re.search(r"^hostname = %s$" % re.escape(HOSTNAME), cp.out, re.M), cp.out
    assert re.search(r"^max_line_length = 2048$", cp.out, re.M), cp.out  # a default


def rcpt_code(d, addr):
    with d.session() as s:
        s.ehlo()
        s.expect("MAIL FROM:<a@client.test>", "250")
        return s.cmd("RCPT TO:<%s>" % addr).code


def wait_rcpt(d, addr, code, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        c = rcpt_code(d, addr)
        if c == code or time.monotonic() > deadline:
            return c
        time.sleep(0.1)


def test_sighup_reload(make_daemon):
    d = make_daemon()
    with open(d.pid_file()) as f:
        assert int(f.read().split()[0]) == d.proc.pid
    assert rcpt_code(d, "newbie@example.test") == 550
    # tsubamectl signals the running daemon itself
    d.ctl("account", "add", "newbie@example.test", "-p", "pw")
    assert wait_rcpt(d, "newbie@example.test", 250) == 250
    tok = token()
    d.send("newbie@example.test", "Subject: hup %s\r\n\r\nx\r\n" % tok)
    d.wait_for_token("newbie@example.test", tok)
    # edit the aliases file by hand, then kill -HUP
    assert rcpt_code(d, "hup@example.test") == 550
    d.append_table("aliases", "hup@example.test demo@example.test\n")
    d.signal(signal.SIGHUP)
    assert wait_rcpt(d, "hup@example.test", 250) == 250
    # a new domain
    d.ctl("domain", "add", "late.test")
    d.ctl("account", "add", "joe@late.test", "-p", "pw")
    assert wait_rcpt(d, "joe@late.test", 250) == 250
    # an account removed
    d.ctl("account", "del", "newbie@example.test")
    assert wait_rcpt(d, "newbie@example.test", 550) == 550
    # a session open across a reload keeps working
    with d.session() as s:
        s.ehlo()
        d.signal(signal.SIGHUP)
        time.sleep(0.3)
        s.expect("MAIL FROM:<a@client.test>", "250")
        s.expect("RCPT TO:<demo@example.test>", "250")


def test_sighup_with_broken_config_keeps_running(make_daemon):
    d = make_daemon()
    with open(d.conf) as f:
        good = f.read()
    with open(d.conf, "a") as f:
        f.write("this is not a parameter line\n")
    d.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert d.running(), d.tail()
    assert rcpt_code(d, "demo@example.test") == 250
    with open(d.conf, "w") as f:
        f.write(good.replace("max_recipients = 5", "max_recipients = 1"))
    d.signal(signal.SIGHUP)
    # the corrected file is taken: max_recipients 1
    deadline = time.monotonic() + 10
    while True:
        with d.session() as s:
            s.ehlo()
            s.expect("MAIL FROM:<a@client.test>", "250")
            s.expect("RCPT TO:<demo@example.test>", "250")
            c = s.cmd("RCPT TO:<bob@example.test>").code
        if c == 452 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert c == 452


def test_sigterm_graceful(make_daemon):
    d = make_daemon(params={"shutdown_timeout": "5"})
    idle = d.session()
    idle.ehlo()
    busy = d.session()
    busy.ehlo()
    busy.expect("MAIL FROM:<a@client.test>", "250")
    busy.expect("RCPT TO:<demo@example.test>", "250")
    busy.expect("DATA", "354")
    tok_busy = token().encode()
    busy.send(b"Subject: during-term " + tok_busy + b"\r\n\r\nfirst half\r\n")
    tok_acked = token()
    d.send("demo@example.test", "Subject: acked %s\r\n\r\nx\r\n" % tok_acked)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    r = idle.reply(timeout=5)
    assert r.startswith("421 4.3.2 %s Service shutting down" % HOSTNAME), r
    assert idle.wait_closed(3)
    # the session in the middle of DATA may finish within shutdown_timeout
    time.sleep(0.3)
    busy.send(b"second half\r\n.\r\n")
    r = busy.reply(timeout=10)
    assert qid_of(r), r
    busy.close()
    try:
        rc = d.proc.wait(timeout=15)
    except Exception:
        pytest.fail("tsubamed did not stop within 15 s of SIGTERM")
    assert rc == 0, (rc, d.tail())
    assert time.monotonic() - t0 < 12
    # new connections are refused while stopped; after a restart both messages are there
    d.start()
    d.wait_for_token("demo@example.test", tok_acked)
    d.wait_for_token("demo@example.test", tok_busy)


def test_logs(tsubame_logs):
    d, qid = tsubame_logs
    assert "qid=%s" % qid in d.log("receive"), d.log("receive")[-2000:]
    assert "qid=%s" % qid in d.log("delivery"), d.log("delivery")[-2000:]
    assert "127.0.0.1" in d.log("connect")
    main = d.log("main")
    assert "qid=%s" % qid in main
    for line in main.splitlines()[:50]:
        assert re.search(r"\w+=", line), line


@pytest.fixture
def tsubame_logs(make_daemon):
    d = make_daemon()
    tok = token()
    qid = d.send("demo@example.test", "Subject: logs %s\r\n\r\nx\r\n" % tok)
    d.wait_for_token("demo@example.test", tok)
    deadline = time.monotonic() + 5
    while "qid=%s" % qid not in d.log("delivery") and time.monotonic() < deadline:
        time.sleep(0.05)
    return d, qid


def test_restart_same_port_and_stale_pid(make_daemon):
    d = make_daemon()
    d.kill9()
    assert os.path.exists(d.pid_file())  # left behind by the kill
    d.start()
    assert rcpt_code(d, "demo@example.test") == 250
    d.restart()
    assert rcpt_code(d, "demo@example.test") == 250


def test_second_instance_refused(make_daemon):
    d = make_daemon()
    p = subprocess.Popen([TSUBAMED, "-c", d.conf], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=d.env(), start_new_session=True)
    try:
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)
        pytest.fail("a second tsubamed on the same work_dir kept running")
    assert p.returncode != 0, out
    assert b"AddressSanitizer" not in out and b"runtime error:" not in out, out
    assert d.running()
    with open(d.pid_file()) as f:
        assert int(f.read().split()[0]) == d.proc.pid
    assert rcpt_code(d, "demo@example.test") == 250
