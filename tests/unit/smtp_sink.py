#!/usr/bin/env python3
"""smtp_sink: a small scriptable SMTP server for the SMTP client's unit tests.

usage: smtp_sink.py PORT MODES [DIR]
  PORT   0 picks a free port; "ready PORT" is printed on stdout once listening.
  MODES  comma-separated: accept (default behaviour), nopipelining, heloonly,
         size1000, starttls, implicittls, auth, dropmail, hangehlo, dataend5xx,
         closeafterdata (close the connection 0.3 s after the reply to the final dot),
         rset421 (answer RSET with 421 and close: a peer that went away),
         vrfy (VRFY answered like RCPT: 250, 450 for "temp", 550 for "perm"), vrfy252 (VRFY
         answered 252); without either VRFY gets 502
  DIR    where messages are saved (or $SINK_DIR): msg-N.eml holds the content
         after dot-unstuffing, env-N.txt the envelope, transcript.txt every
         command and reply (" [more]" marks a command read while the next
         one was already waiting: evidence of pipelining).  $SINK_CERT and $SINK_KEY name the TLS certificate.
Always: RCPT to an address containing "temp" gets 450, "perm" gets 550.
AUTH (mode auth) accepts user "tester" with password "s3cret" (PLAIN, LOGIN, CRAM-MD5).
Stdlib only; exits by itself after 60 seconds.
"""
import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import sys

USER, PASSWORD = "tester", "s3cret"


class Sink:
    def __init__(self, modes, folder):
        self.modes = set(modes)
        self.folder = folder
        self.count = 0
        self.tls_ctx = None
        if "starttls" in self.modes or "implicittls" in self.modes:
            self.tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls_ctx.load_cert_chain(os.environ["SINK_CERT"], os.environ["SINK_KEY"])

    def log(self, line):
        if self.folder:
            with open(os.path.join(self.folder, "transcript.txt"), "a") as f:
                f.write(line + "\n")

    async def session(self, reader, writer):
        tls = "implicittls" in self.modes
        authed = False
        mail_from, rcpts = None, []

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
            await reply("220 sink.test ESMTP ready")
            while True:
                line = await readline()
                # " [more]": the next command was already buffered (the client pipelined).
                self.log("C: " + line + (" [more]" if reader._buffer else ""))
                verb = line.split(" ", 1)[0].upper()
                arg = line[len(verb):].strip()
                if verb == "EHLO":
                    if "heloonly" in self.modes:
                        await reply("502 5.5.1 EHLO not implemented")
                        continue
                    if "hangehlo" in self.modes:
                        await asyncio.sleep(3600)
                    ext = ["250-sink.test greets " + arg]
                    if "nopipelining" not in self.modes:
                        ext.append("250-PIPELINING")
                    ext.append("250-SIZE 1000" if "size1000" in self.modes else "250-SIZE 10485760")
                    ext += ["250-8BITMIME", "250-DSN"]
                    if "starttls" in self.modes and not tls:
                        ext.append("250-STARTTLS")
                    if "auth" in self.modes:
                        ext.append("250-AUTH PLAIN LOGIN CRAM-MD5")
                    ext.append("250 ENHANCEDSTATUSCODES")
                    await reply("\r\n".join(ext))
                elif verb == "HELO":
                    await reply("250 sink.test")
                elif verb == "STARTTLS" and "starttls" in self.modes and not tls:
                    await reply("220 2.0.0 go ahead")
                    await writer.start_tls(self.tls_ctx)
                    tls = True
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
                    elif mech == "CRAM-MD5":
                        chal = b"<12345.67890@sink.test>"
                        await reply("334 " + base64.b64encode(chal).decode())
                        resp = base64.b64decode(await readline()).decode()
                        want = USER + " " + hmac.new(PASSWORD.encode(), chal, hashlib.md5).hexdigest()
                        ok = resp == want
                    if ok:
                        authed = True
                        await reply("235 2.7.0 authenticated as " + USER + " with " + mech)
                    else:
                        await reply("535 5.7.8 authentication failed")
                elif verb == "MAIL":
                    if "dropmail" in self.modes:
                        writer.close()
                        return
                    if "auth" in self.modes and not authed:
                        await reply("530 5.7.0 authentication required")
                        continue
                    if "size1000" in self.modes and "SIZE=" in arg.upper():
                        size = int(arg.upper().split("SIZE=")[1].split(" ")[0])
                        if size > 1000:
                            await reply("552 5.3.4 too big")
                            continue
                    mail_from, rcpts = arg, []
                    await reply("250 2.1.0 ok")
                elif verb == "RCPT":
                    if mail_from is None:
                        await reply("503 5.5.1 need MAIL")
                    elif "temp" in arg:
                        await reply("450 4.2.0 mailbox busy")
                    elif "perm" in arg:
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
                    if "dataend5xx" in self.modes:
                        await reply("554 5.6.0 content rejected")
                    else:
                        self.count += 1
                        if self.folder:
                            with open(os.path.join(self.folder, "msg-%d.eml" % self.count), "wb") as f:
                                f.write(data)
                            with open(os.path.join(self.folder, "env-%d.txt" % self.count), "w") as f:
                                f.write(mail_from + "\n" + "\n".join(rcpts) + "\n")
                        await reply("250 2.0.0 queued as %d" % self.count)
                    mail_from, rcpts = None, []
                    if "closeafterdata" in self.modes:
                        await asyncio.sleep(0.3)   # the client has parked the connection by now
                        self.log("S: <close>")
                        writer.close()
                        return
                elif verb == "RSET" and "rset421" in self.modes:
                    await reply("421 4.3.2 service shutting down")
                    writer.close()
                    return
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    await reply("250 2.0.0 ok")
                elif verb == "VRFY" and "vrfy" in self.modes:
                    if "temp" in arg:
                        await reply("450 4.2.0 mailbox busy")
                    elif "perm" in arg:
                        await reply("550 5.1.1 no such user")
                    else:
                        await reply("250 2.1.5 " + arg)
                elif verb == "VRFY" and "vrfy252" in self.modes:
                    await reply("252 2.5.2 Cannot VRFY user, but will accept message")
                elif verb == "NOOP":
                    await reply("250 2.0.0 ok")
                elif verb == "QUIT":
                    await reply("221 2.0.0 bye")
                    writer.close()
                    return
                else:
                    await reply("502 5.5.2 unknown command")
        except (ConnectionError, ssl.SSLError, OSError, ValueError, IndexError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass


async def main():
    port = int(sys.argv[1])
    modes = sys.argv[2].split(",") if len(sys.argv) > 2 else ["accept"]
    folder = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("SINK_DIR")
    sink = Sink(modes, folder)
    server = await asyncio.start_server(sink.session, "127.0.0.1", port, limit=1 << 20,
                                        ssl=sink.tls_ctx if "implicittls" in sink.modes else None)
    print("ready %d" % server.sockets[0].getsockname()[1], flush=True)
    asyncio.get_running_loop().call_later(60, lambda: os._exit(0))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
