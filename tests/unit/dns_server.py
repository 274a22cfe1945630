#!/usr/bin/python3
"""A tiny authoritative DNS server for test_dns.c: the block-list zones on loopback.

Usage: dns_server.py PORT   (UDP and TCP on 127.0.0.1:PORT; exits by itself after 60 s)

dnslib packs and parses the messages; this file only decides the answers:
  bl.test    2.0.0.127 A 127.0.0.2 + TXT "listed for testing"; 4.0.0.127 A 127.0.0.4, no TXT;
             3.0.0.127 A 127.0.0.3 + TXT with CR LF (reply injection attempt);
             5.0.0.127 A 10.0.0.5 (not a listing); 6.0.0.127 A 127.255.255.254 (list error code);
             2001:db8::2 (nibbles) A 127.0.0.2 + TXT "v6 listed"
  bl2.test   2.0.0.127 and 7.0.0.127 listed, with their own TXT
  slow.test  never answered (time-outs);  fail.test  SERVFAIL
  data.test  A 192.0.2.1, 192.0.2.2; TXT two records, the first of two strings
Anything else: NXDOMAIN.  A name that exists without the asked type: NOERROR, no answers.
"""
import select
import socket
import struct
import sys
import time

from dnslib import A, QTYPE, RCODE, RR, TXT, DNSRecord

LIFETIME = 60.0
V6 = ".".join(reversed("20010db8000000000000000000000002")) + ".bl.test"

RECORDS = {
    "2.0.0.127.bl.test": [A("127.0.0.2"), TXT("listed for testing")],
    "4.0.0.127.bl.test": [A("127.0.0.4")],
    "3.0.0.127.bl.test": [A("127.0.0.3"), TXT("bad\r\n250 injected")],
    "5.0.0.127.bl.test": [A("10.0.0.5")],
    "6.0.0.127.bl.test": [A("127.255.255.254")],
    V6: [A("127.0.0.2"), TXT("v6 listed")],
    "2.0.0.127.bl2.test": [A("127.0.0.2"), TXT("second list")],
    "7.0.0.127.bl2.test": [A("127.0.0.7"), TXT("only in second")],
    "data.test": [A("192.0.2.1"), A("192.0.2.2"), TXT(["part1", "part2"]), TXT("other")],
}


def answer(data):
    """The reply bytes for one query, or None to stay silent."""
    try:
        req = DNSRecord.parse(data)
    except Exception:
        return None
    reply = req.reply()
    name = str(req.q.qname).rstrip(".").lower()
    if name.endswith("slow.test"):
        return None
    if name.endswith("fail.test"):
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()
    if name not in RECORDS:
        reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()
    for rdata in RECORDS[name]:
        rtype = QTYPE.A if isinstance(rdata, A) else QTYPE.TXT
        if rtype == req.q.qtype:
            reply.add_answer(RR(req.q.qname, rtype, rdata=rdata, ttl=60))
    return reply.pack()


def main():
    port = int(sys.argv[1])
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
            out = answer(data)
            if out is not None:
                udp.sendto(out, peer)
        if tcp in ready:
            conn, _ = tcp.accept()
            conn.settimeout(2.0)
            try:
                hdr = conn.recv(2, socket.MSG_WAITALL)
                if len(hdr) == 2:
                    data = conn.recv(struct.unpack("!H", hdr)[0], socket.MSG_WAITALL)
                    out = answer(data)
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                pass
            finally:
                conn.close()


if __name__ == "__main__":
    main()
