"""delivery_peers: real peers on loopback for the delivery engine's integration tests.

DnsServer: an authoritative dnslib server (UDP and TCP on 127.0.0.1, a free port) in a thread,
answering from a zone given by the test (MX, A, null MX, SERVFAIL names; NXDOMAIN otherwise).

Sink: a scriptable SMTP server on any 127.0.0.x address and port, in a thread of this process
(so a kill -9 of the daemon leaves it alone).  Modes (a set the test may change while it runs):
  starttls, implicittls  TLS (needs cert, key)
  auth                   AUTH PLAIN/LOGIN, user tester / s3cret; MAIL needs it
  hangehlo               no answer to EHLO/HELO (the client times out)
  closeafterdata         close the connection 0.3 s after the reply to the final dot
  rset421                answer RSET with 421 and close (a cached connection gone stale)
Always: RCPT to an address containing "temp" gets 450, "perm" gets 550.
data_delay (seconds, settable while it runs) holds the reply to the final dot back.
It records every command and reply (transcript) and every accepted message (messages, each
with its arrival time), counts connections, and keeps the highest number of sessions open at
once (max_active) and of transactions between MAIL and the end of data at once (max_in_txn).
Every wait is bounded.
"""
import asyncio
import base64
import socket
import ssl
import threading
import time

import pytest

from dnslib import AAAA, MX, QTYPE, RCODE, RR, A, DNSRecord

USER, PASSWORD = "tester", "s3cret"


def bind_udp_tcp(host="127.0.0.1"):
    """A UDP and a listening TCP socket on one port number free for both (a DNS server's pair);
    the UDP pick may be taken on TCP by another test, so try again."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((host, port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp, port
    raise OSError("no port free for both UDP and TCP")


class DnsServer:
    """zone: {name: [("MX", pref, host) | ("A", ip)]}; servfail: names answered SERVFAIL."""

    def __init__(self, zone, servfail=()):
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.servfail = {s.lower().rstrip(".") for s in servfail}
        self.queries = []
        self.udp, self.tcp, self.port = bind_udp_tcp()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def answer(self, data):
        q = DNSRecord.parse(data)
        name = str(q.q.qname).lower().rstrip(".")
        qtype = QTYPE[q.q.qtype]
        self.queries.append((name, qtype))
        r = q.reply()
        r.header.aa = 1
        if name in self.servfail or any(name.endswith("." + s) for s in self.servfail):
            r.header.rcode = RCODE.SERVFAIL
            return r.pack()
        if name not in self.zone:
            r.header.rcode = RCODE.NXDOMAIN
            return r.pack()
        for rec in self.zone[name]:
            if rec[0] == "MX" and qtype in ("MX", "ANY"):
                r.add_answer(RR(name, QTYPE.MX, rdata=MX(rec[2], rec[1]), ttl=300))
            elif rec[0] == "A" and qtype in ("A", "ANY"):
                r.add_answer(RR(name, QTYPE.A, rdata=A(rec[1]), ttl=300))
            elif rec[0] == "AAAA" and qtype in ("AAAA", "ANY"):
                r.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(rec[1]), ttl=300))
        return r.pack()

    def _run(self):
        import select
        while not self.stopping:
            try:
                ready, _, _ = select.select([self.udp, self.tcp], [], [], 0.2)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    if s is self.udp:
                        data, peer = self.udp.recvfrom(4096)
                        self.udp.sendto(self.answer(data), peer)
                    else:
                        c, _ = self.tcp.accept()
                        c.settimeout(2)
                        with c:
                            n = int.from_bytes(c.recv(2), "big")
                            data = b""
                            while len(data) < n:
                                chunk = c.recv(n - len(data))
                                if not chunk:
                                    break
                                data += chunk
                            out = self.answer(data)
                            c.sendall(len(out).to_bytes(2, "big") + out)
                except Exception:
                    pass

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.udp.close()
        self.tcp.close()


class Sink:
    def __init__(self, host, port=0, modes=(), cert=None, key=None):
        self.host = host
        self.modes = set(modes)
        self.transcript = []
        self.messages = []        # dicts: mail_from, rcpts, data (bytes, dot-unstuffed, CRLF)
        self.connections = 0
        self.active = self.max_active = 0
        self.in_txn = self.max_in_txn = 0
        self.data_delay = 0.0
        self.lock = threading.Lock()
        self.tls_ctx = None
        if cert:
            self.tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls_ctx.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.writers = set()
        self.ready = threading.Event()
        self.want_port = port
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(5), "sink did not start"
        assert self.port, "sink could not bind %s:%s: %r" % (host, port, self.error)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.port = None
        self.error = None

        async def start():
            return await asyncio.start_server(
                self.session, self.host, self.want_port, limit=1 << 20,
                ssl=self.tls_ctx if "implicittls" in self.modes else None)
        try:
            self.server = self.loop.run_until_complete(start())
            self.port = self.server.sockets[0].getsockname()[1]
        except OSError as e:
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    def log(self, line):
        with self.lock:
            self.transcript.append(line)

    def commands(self, verb):
        return [l[3:] for l in self.transcript if l.startswith("C: ") and l[3:].upper().startswith(verb)]

    def wait(self, pred, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return pred()

    def wait_messages(self, n, timeout=15.0):
        ok = self.wait(lambda: len(self.messages) >= n, timeout)
        assert ok, "sink %s:%d: %d message(s), expected %d\n%s" % (
            self.host, self.port, len(self.messages), n, "\n".join(self.transcript[-40:]))
        return self.messages

    def _count(self, what, delta):
        with self.lock:
            if what == "active":
                self.active += delta
                self.max_active = max(self.max_active, self.active)
            else:
                self.in_txn += delta
                self.max_in_txn = max(self.max_in_txn, self.in_txn)

    async def session(self, reader, writer):
        self.connections += 1
        self._count("active", 1)
        self.writers.add(writer)
        tls = "implicittls" in self.modes
        authed = False
        mail_from, rcpts = None, []
        txn = [False]

        def txn_end():
            if txn[0]:
                txn[0] = False
                self._count("txn", -1)

        async def reply(text):
            self.log("S: " + text.replace("\r\n", " | "))
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        async def readline():
            line = await reader.readline()
            if not line:
                raise ConnectionError("eof")
            return line.decode("utf-8", "replace").rstrip("\r\n")

        try:
            self.log("connect")
            await reply("220 sink.test ESMTP ready")
            while True:
                line = await readline()
                self.log("C: " + line)
                verb = line.split(" ", 1)[0].upper()
                arg = line[len(verb):].strip()
                if verb in ("EHLO", "HELO") and "hangehlo" in self.modes:
                    await asyncio.sleep(3600)
                if verb == "EHLO":
                    ext = ["250-sink.test greets " + arg, "250-PIPELINING", "250-SIZE 10485760",
                           "250-8BITMIME"]
                    if ("starttls" in self.modes or "brokentls" in self.modes) and not tls:
                        ext.append("250-STARTTLS")
                    if "auth" in self.modes:
                        ext.append("250-AUTH PLAIN LOGIN")
                    if "dsn" in self.modes:
                        ext.append("250-DSN")
                    ext.append("250 ENHANCEDSTATUSCODES")
                    await reply("\r\n".join(ext))
                elif verb == "HELO":
                    await reply("250 sink.test")
                elif verb == "STARTTLS" and "brokentls" in self.modes:
                    # a handshake that can only fail: garbage instead of a ServerHello
                    await reply("220 2.0.0 go ahead")
                    writer.write(b"this is not TLS\r\n" * 4)
                    await writer.drain()
                    return
                elif verb == "STARTTLS" and "starttls" in self.modes and not tls:
                    await reply("220 2.0.0 go ahead")
                    await writer.start_tls(self.tls_ctx)
                    tls = True
                    self.log("tls")
                    mail_from, rcpts = None, []
                elif verb == "AUTH" and "auth" in self.modes:
                    parts = arg.split(" ")
                    mech = parts[0].upper()
                    ok = False
                    if mech == "PLAIN":
                        resp = parts[1] if len(parts) > 1 else None
                        if resp is None:
                            await reply("334 ")
                            resp = await readline()
                        raw = base64.b64decode(resp)
                        ok = raw.split(b"\0")[1:] == [USER.encode(), PASSWORD.encode()]
                    elif mech == "LOGIN":
                        await reply("334 VXNlcm5hbWU6")
                        user = base64.b64decode(await readline())
                        await reply("334 UGFzc3dvcmQ6")
                        pw = base64.b64decode(await readline())
                        ok = user == USER.encode() and pw == PASSWORD.encode()
                    if ok:
                        authed = True
                        await reply("235 2.7.0 authenticated")
                    else:
                        await reply("535 5.7.8 authentication failed")
                elif verb == "MAIL":
                    if "auth" in self.modes and not authed:
                        await reply("530 5.7.0 authentication required")
                        continue
                    mail_from, rcpts = arg, []
                    if not txn[0]:
                        txn[0] = True
                        self._count("txn", 1)
                    await reply("250 2.1.0 ok")
                elif verb == "RCPT":
                    if mail_from is None:
                        await reply("503 5.5.1 need MAIL")
                    elif "temp" in arg.lower():
                        await reply("450 4.2.0 mailbox busy")
                    elif "perm" in arg.lower():
                        await reply("550 5.1.1 no such user")
                    else:
                        rcpts.append(arg)
                        await reply("250 2.1.5 ok")
                elif verb == "DATA":
                    if not rcpts:
                        await reply("554 5.5.1 no valid recipients")
                        continue
                    await reply("354 go ahead")
                    data = bytearray()
                    while True:
                        raw = await reader.readline()
                        if not raw:
                            raise ConnectionError("eof in data")
                        if raw == b".\r\n":
                            break
                        if raw.startswith(b"."):
                            raw = raw[1:]
                        data += raw
                    self.log("C: <%d bytes>" % len(data))
                    if self.data_delay:
                        await asyncio.sleep(self.data_delay)
                    with self.lock:
                        self.messages.append({"mail_from": mail_from, "rcpts": list(rcpts),
                                              "data": bytes(data), "tls": tls, "time": time.monotonic()})
                    txn_end()
                    await reply("250 2.0.0 queued as %d" % len(self.messages))
                    mail_from, rcpts = None, []
                    if "closeafterdata" in self.modes:
                        await asyncio.sleep(0.3)
                        self.log("close")
                        return
                elif verb == "RSET" and "rset421" in self.modes:
                    await reply("421 4.3.2 service shutting down")
                    return
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    txn_end()
                    await reply("250 2.0.0 ok")
                elif verb == "NOOP":
                    await reply("250 2.0.0 ok")
                elif verb == "QUIT":
                    await reply("221 2.0.0 bye")
                    return
                else:
                    await reply("502 5.5.2 unknown command")
        except (ConnectionError, ssl.SSLError, OSError, ValueError, IndexError, asyncio.CancelledError):
            pass
        finally:
            txn_end()
            self._count("active", -1)
            self.writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    def stop(self):
        def shutdown():
            self.server.close()
            for w in list(self.writers):
                try:
                    w.close()
                except Exception:
                    pass
            for t in asyncio.all_tasks(self.loop):
                t.cancel()
            self.loop.call_later(0.1, self.loop.stop)
        if self.port:
            self.loop.call_soon_threadsafe(shutdown)
        self.thread.join(3)


@pytest.fixture
def sinks():
    """Factory fixture: sinks(host, port=0, modes=(), **kw) -> a started Sink, stopped at teardown."""
    made = []

    def factory(host, port=0, modes=(), **kw):
        s = Sink(host, port, modes, **kw)
        made.append(s)
        return s
    yield factory
    for s in made:
        s.stop()
