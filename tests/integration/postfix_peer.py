"""A private Postfix instance for the tests that use Debian's Postfix as a real peer (a smart
host with AUTH, an ISP that holds mail for ETRN): its own config, queue and data folders under
`top`, one listener on ip:port written by the caller's master.cf, started with `postfix -c`,
stopped with a bounded wait and, if need be, SIGKILL to its master's process group.  Nothing of
the system's /etc/postfix is used.  Needs root (Postfix's master) and /usr/sbin/postfix."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

from tsubame_harness import free_port, wait_lines

POSTFIX = "/usr/sbin/postfix"


class PrivatePostfix:
    def __init__(self, top, ip):
        self.top, self.ip = top, ip
        self.port = free_port(ip)
        self.etc = os.path.join(top, "etc")
        self.queue = os.path.join(top, "queue")
        self.data = os.path.join(top, "data")
        self.maillog = os.path.join(top, "maillog")
        self.setup_log = os.path.join(top, "setup.log")
        self.started = False
        self.pw = pwd.getpwnam("postfix")
        for d in (self.top, self.etc, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        os.chown(self.data, self.pw.pw_uid, self.pw.pw_gid)

    def write_etc(self, name, text):
        p = os.path.join(self.etc, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o644)
        return p

    def postfix(self, *args, timeout=60):
        """postfix -c etc ARGS.  Postfix reports command-line errors on stderr only when it is
        a terminal (else to syslog): script(1) gives it one, so a failure explains itself."""
        cmd = " ".join([POSTFIX, "-c", self.etc] + list(args))
        argv = ["script", "-qec", cmd, "/dev/null"] if shutil.which("script") else [POSTFIX, "-c", self.etc] + list(args)
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
        with open(self.setup_log, "a") as f:
            f.write("$ %s -> %d\n%s\n" % (cmd, cp.returncode, out))
        return cp.returncode, out

    def start(self, timeout=30.0):
        rc, out = self.postfix("check")
        assert rc == 0, "postfix check -> %d:\n%s\n%s" % (rc, out, self.log()[-2000:])
        self.started = True
        rc, out = self.postfix("start")
        assert rc == 0, "postfix start -> %d:\n%s\n%s" % (rc, out, self.log()[-2000:])
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.ip, self.port), timeout=3) as s:
                    s.settimeout(5)
                    banner = s.recv(512)
                    if banner.startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
                    last = banner
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError("Postfix not answering on %s:%d after %.0fs (%r)\n%s" % (
            self.ip, self.port, timeout, last, self.log()[-3000:]))

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def stop(self):
        """postfix stop, bounded; SIGKILL to the master's process group if it outlives that."""
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        try:
            self.postfix("stop", timeout=30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while pid and time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
            time.sleep(0.1)
        if pid and os.path.exists("/proc/%d" % pid):
            try:
                os.killpg(pid, signal.SIGKILL)   # the master runs its own session (setsid)
            except (ProcessLookupError, PermissionError):
                pass

    def log(self):
        try:
            with open(self.maillog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=20.0):
        return wait_lines(self.log, pattern, timeout, what="Postfix's log")
