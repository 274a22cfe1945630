#!/usr/bin/python3
"""A tiny authoritative DNS server for test_mx.c: MX routing zones on loopback.

Usage: mx_dns_server.py PORT COUNTS_FILE
UDP and TCP on 127.0.0.1:PORT; exits by itself after 60 s.  After every query,
and before its answer is sent, COUNTS_FILE is rewritten (temporary file, rename)
with one line "name TYPE count" per name and type asked so far, so a client that
has its answer can already read the count ("a cache hit sends no query").

dnslib packs and parses the messages; this file only decides the answers:
  multi.test      MX 10 a, 20 b, 20 c (.multi.test), each with A and AAAA
  amx.test        no MX; A 127.0.2.1, AAAA 2001:db8::21 (implicit MX)
  empty.test      exists (TXT only): no MX, no A, no AAAA
  null.test       MX 0 "." (RFC 7505 null MX)
  cname.test      MX 10 alias.cname.test, a CNAME to real.cname.test (A 127.0.3.1)
  fail.test       SERVFAIL for everything
  backup.test     MX 10 primary, 20 mx.ourhost.test (us, by name), 30 other.backup.test
  selfbest.test   MX 10 mx.ourhost.test (us), 20 second.selfbest.test
  selfaddr.test   MX 10 p, 20 q (A 127.0.9.9: us, by address), 30 r (.selfaddr.test)
  ttl.test        MX 10 t.ttl.test and its A, TTL 2 s
  exch.test       MX 10 mx.exch.test (A 127.0.5.1; the test's hosts table overrides it)
  deadmx.test     MX 10 gone.deadmx.test (NXDOMAIN) and 20 down.fail.test (SERVFAIL)
Anything else: NXDOMAIN.  A name that exists without the asked type: NOERROR, no answers.
"""
import os
import select
import socket
import struct
import sys
import time

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord

LIFETIME = 60.0
TTL = 300

# name -> list of (rdata, ttl)
ZONE = {}


def add(name, rdata, ttl=TTL):
    ZONE.setdefault(name, []).append((rdata, ttl))


add("multi.test", MX("a.multi.test", 10))
add("multi.test", MX("b.multi.test", 20))
add("multi.test", MX("c.multi.test", 20))
for i, h in enumerate("abc", 1):
    add(h + ".multi.test", A("127.0.1.%d" % i))
    add(h + ".multi.test", AAAA("2001:db8::1:%d" % i))
add("amx.test", A("127.0.2.1"))
add("amx.test", AAAA("2001:db8::21"))
add("empty.test", TXT("nothing here"))
add("null.test", MX(".", 0))
add("cname.test", MX("alias.cname.test", 10))
add("alias.cname.test", CNAME("real.cname.test"))
add("real.cname.test", A("127.0.3.1"))
add("backup.test", MX("primary.backup.test", 10))
add("backup.test", MX("mx.ourhost.test", 20))
add("backup.test", MX("other.backup.test", 30))
add("primary.backup.test", A("127.0.6.1"))
add("other.backup.test", A("127.0.6.3"))
add("mx.ourhost.test", A("127.0.9.9"))
add("selfbest.test", MX("mx.ourhost.test", 10))
add("selfbest.test", MX("second.selfbest.test", 20))
add("second.selfbest.test", A("127.0.7.2"))
add("selfaddr.test", MX("p.selfaddr.test", 10))
add("selfaddr.test", MX("q.selfaddr.test", 20))
add("selfaddr.test", MX("r.selfaddr.test", 30))
add("p.selfaddr.test", A("127.0.8.1"))
add("q.selfaddr.test", A("127.0.9.9"))
add("r.selfaddr.test", A("127.0.8.3"))
add("ttl.test", MX("t.ttl.test", 10), 2)
add("t.ttl.test", A("127.0.4.1"), 2)
add("exch.test", MX("mx.exch.test", 10))
add("mx.exch.test", A("127.0.5.1"))
add("deadmx.test", MX("gone.deadmx.test", 10))
add("deadmx.test", MX("down.fail.test", 20))

RTYPE = {A: QTYPE.A, AAAA: QTYPE.AAAA, MX: QTYPE.MX, TXT: QTYPE.TXT, CNAME: QTYPE.CNAME}

COUNTS = {}


def write_counts(path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for (name, qtype), n in sorted(COUNTS.items()):
            f.write("%s %s %d\n" % (name, qtype, n))
    os.rename(tmp, path)


def answer(data, counts_path):
    """The reply bytes for one query, or None to stay silent."""
    try:
        req = DNSRecord.parse(data)
    except Exception:
        return None
    reply = req.reply()
    name = str(req.q.qname).rstrip(".").lower()
    qtype = QTYPE.get(req.q.qtype)
    COUNTS[(name, qtype)] = COUNTS.get((name, qtype), 0) + 1
    write_counts(counts_path)
    if name.endswith("fail.test"):
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()
    # Follow CNAMEs inside the zone, as a recursive server would, putting the chain in the answer.
    for _ in range(8):
        if name not in ZONE:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply.pack()
        cname = [(r, t) for r, t in ZONE[name] if isinstance(r, CNAME)]
        if cname and req.q.qtype != QTYPE.CNAME:
            reply.add_answer(RR(name, QTYPE.CNAME, rdata=cname[0][0], ttl=cname[0][1]))
            name = str(cname[0][0].label).rstrip(".").lower()
            continue
        for rdata, ttl in ZONE[name]:
            if RTYPE[type(rdata)] == req.q.qtype:
                reply.add_answer(RR(name, req.q.qtype, rdata=rdata, ttl=ttl))
        break
    return reply.pack()


def main():
    port = int(sys.argv[1])
    counts_path = sys.argv[2]
    write_counts(counts_path)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    end = time.monotonic() + LIFETIME
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([udp, tcp], [], [], left)
        if udp in ready:
            data, peer = udp.recvfrom(4096)
            out = answer(data, counts_path)
            if out is not None:
                udp.sendto(out, peer)
        if tcp in ready:
            conn, _ = tcp.accept()
            conn.settimeout(2.0)
            try:
                hdr = conn.recv(2, socket.MSG_WAITALL)
                if len(hdr) == 2:
                    data = conn.recv(struct.unpack("!H", hdr)[0], socket.MSG_WAITALL)
                    out = answer(data, counts_path)
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                pass
            finally:
                conn.close()


if __name__ == "__main__":
    main()
