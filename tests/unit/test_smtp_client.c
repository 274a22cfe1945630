/*
 * Unit tests for src/deliver/smtp_client.c against a real SMTP peer on
 * loopback: tests/unit/smtp_sink.py (stdlib asyncio), one sink per test in the
 * mode the test needs.  Checks byte-exact content with dot-stuffing, pipelined
 * and one-by-one replies with mixed per-recipient results, HELO fallback,
 * SIZE refusal without sending, 4xx/5xx classification, DATA-end rejection,
 * connection loss and timeout, STARTTLS (opportunistic, mandatory, refused,
 * verified), implicit TLS, AUTH PLAIN/LOGIN/CRAM-MD5 and 535, connection reuse.
 * Every wait is bounded (sink start 5 s, each client run 8 s).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>

#include "deliver/smtp_client.h"
#include "tls/tls_client.h"
#include "util/buf.h"

#include "smtp_sink.h"

static char certdir[64];
static char certfile[128];
static SSL_CTX *client_ctx;

/* ---- messages ----------------------------------------------------------------- */

struct msg {
	int fd;
	char path[64];
	size_t len;
};

static void msg_make(struct msg *m, const char *content, size_t len)
{
	snprintf(m->path, sizeof(m->path), "/tmp/smtp-msg-XXXXXX");
	m->fd = mkstemp(m->path);
	assert_true(m->fd >= 0);
	/* a prefix that must not be sent: the content starts at offset 7 */
	assert_int_equal(write(m->fd, "HEADER\n", 7), 7);
	assert_int_equal(write(m->fd, content, len), (ssize_t)len);
	m->len = len;
}

static void msg_free(struct msg *m)
{
	close(m->fd);
	unlink(m->path);
}

static void txn_init(struct smtp_txn *t, const char *sender, struct smtp_rcpt *r, size_t n, const struct msg *m)
{
	memset(t, 0, sizeof(*t));
	t->sender = sender;
	t->rcpts = r;
	t->nrcpt = n;
	t->fd = m->fd;
	t->offset = 7;
	t->length = (off_t)m->len;
}

/* ---- running the client ---------------------------------------------------------- */

struct run {
	struct event_base *base;
	struct smtp_client_params p;
	struct smtp_txn *txns[4];
	size_t ntxn, next;
	int closed, timed_out;
	enum smtp_status close_st;
	enum smtp_failure close_why;
	struct smtp_reply close_reply;
	unsigned ext;
	int tls;
	char mech[16];
	struct smtp_client *c;
};

static void on_txn(struct smtp_client *c, struct smtp_txn *t, void *arg)
{
	struct run *r = arg;
	assert_ptr_equal(t, r->txns[r->next]);
	r->ext = smtp_client_extensions(c);
	r->tls = smtp_client_tls_active(c);
	snprintf(r->mech, sizeof(r->mech), "%s", smtp_client_auth_mech(c));
	if (++r->next < r->ntxn)
		assert_int_equal(smtp_client_send(c, r->txns[r->next]), 0);
	else
		smtp_client_quit(c);
}

static void on_close(struct smtp_client *c, enum smtp_status st, enum smtp_failure why, const struct smtp_reply *rep,
    void *arg)
{
	struct run *r = arg;
	r->closed = 1;
	r->close_st = st;
	r->close_why = why;
	r->close_reply = *rep;
	r->c = NULL;
	event_base_loopbreak(r->base);
}

static void on_connected(int fd, int err, void *arg)
{
	struct run *r = arg;
	if (fd < 0) {
		r->closed = 1;
		r->close_st = SMTP_TEMP;
		r->close_why = SMTP_FAIL_CONNECT;
		snprintf(r->close_reply.text, sizeof(r->close_reply.text), "%s", strerror(err));
		event_base_loopbreak(r->base);
		return;
	}
	r->c = smtp_client_new(r->base, fd, &r->p, on_txn, on_close, r);
	if (r->ntxn)
		assert_int_equal(smtp_client_send(r->c, r->txns[0]), 0);
	else
		smtp_client_quit(r->c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	r->timed_out = 1;
	event_base_loopbreak(r->base);
}

static void run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	smtp_client_params_defaults(&r->p);
	r->p.helo = "client.test";
	r->p.tag = "test";
	r->p.connect_ms = 2000;
	r->p.greeting_ms = r->p.mail_ms = r->p.rcpt_ms = r->p.data_init_ms = r->p.data_block_ms = r->p.data_end_ms = 5000;
	r->p.ssl_ctx = client_ctx;
	r->p.tls_servername = "localhost";
}

static void run_client(struct run *r, int port)
{
	r->base = event_base_new();
	struct sockaddr_in sin = {0};
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	smtp_client_connect(r->base, (struct sockaddr *)&sin, sizeof(sin), r->p.connect_ms, on_connected, r);
	struct event *deadline = evtimer_new(r->base, on_deadline, r);
	struct timeval tv = {8, 0};
	evtimer_add(deadline, &tv);
	event_base_dispatch(r->base);
	event_free(deadline);
	if (r->c)
		smtp_client_free(r->c);
	event_base_free(r->base);
	assert_false(r->timed_out);
	assert_true(r->closed);
}

static void expect_rcpt(const struct smtp_rcpt *r, enum smtp_status st, int code, const char *enh)
{
	if (r->status != st || r->reply.code != code || strcmp(r->reply.enhanced, enh) != 0)
		fail_msg("%s: status %d code %d %s (%s), wanted %d %d %s", r->addr, r->status, r->reply.code,
		    r->reply.enhanced, r->reply.text, st, code, enh);
}

/* Deliver one simple message to a sink in the given mode with the given params adjustments. */
static const char simple[] = "Subject: hi\r\n\r\nhello\r\n";

/* ---- tests ------------------------------------------------------------------------ */

static void test_plain_dot_stuffing(void **state)
{
	struct sink s;
	sink_start(&s, "accept");
	/* dots at line starts, a lone ".", a long body (streamed through the watermarks), no final CRLF */
	struct buf content;
	buf_init(&content, 1 << 20);
	buf_puts(&content, "Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nmid.dle\r\n.\r\n");
	for (int i = 0; i < 6000; i++)
		buf_appendf(&content, "%sline %d of the long body, with text to fill it up\r\n", i % 7 ? "" : ".", i);
	buf_puts(&content, ".last line without CRLF");
	struct msg m;
	msg_make(&m, content.data, content.len);
	struct smtp_rcpt rc[1] = {{.addr = "alice@sink.test"}};
	struct smtp_txn t;
	txn_init(&t, "sender@client.test", rc, 1, &m);
	struct run r;
	run_init(&r);
	r.txns[0] = &t;
	r.ntxn = 1;
	run_client(&r, s.port);
	assert_int_equal(r.close_st, SMTP_OK);
	assert_int_equal(t.status, SMTP_OK);
	assert_int_equal(t.accepted, 1);
	expect_rcpt(&rc[0], SMTP_OK, 250, "2.0.0");
	size_t len;
	char *got = sink_file(&s, "msg-1.eml", &len);
	assert_non_null(got);
	buf_puts(&content, "\r\n");   /* the client ends the content with CRLF */
	assert_int_equal(len, content.len);
	assert_memory_equal(got, content.data, len);
	free(got);
	char *env = sink_file(&s, "env-1.txt", NULL);
	char want[128];
	snprintf(want, sizeof(want), "FROM:<sender@client.test> SIZE=%zu\nTO:<alice@sink.test>\n", m.len);
	assert_string_equal(env, want);
	free(env);
	assert_true(r.ext & SMTP_EXT_PIPELINING);
	assert_true(r.ext & SMTP_EXT_SIZE);
	assert_false(r.tls);
	buf_free(&content);
	msg_free(&m);
	sink_stop(&s);
}

static void mixed(const char *mode, int pipelined)
{
	struct sink s;
	sink_start(&s, mode);
	struct msg m;
	msg_make(&m, simple, strlen(simple));
	struct smtp_rcpt rc[4] = {{.addr = "ok1@sink.test"}, {.addr = "temp@sink.test"}, {.addr = "perm@sink.test"},
	    {.addr = "ok2@sink.test"}};
	struct smtp_txn t;
	txn_init(&t, "", rc, 4, &m);
	struct run r;
	run_init(&r);
	r.txns[0] = &t;
	r.ntxn = 1;
	run_client(&r, s.port);
	assert_int_equal(r.close_st, SMTP_OK);
	expect_rcpt(&rc[0], SMTP_OK, 250, "2.0.0");
	expect_rcpt(&rc[1], SMTP_TEMP, 450, "4.2.0");
	assert_int_equal(rc[1].why, SMTP_FAIL_REPLY);
	assert_string_equal(rc[1].reply.text, "mailbox busy");
	expect_rcpt(&rc[2], SMTP_PERM, 550, "5.1.1");
	assert_string_equal(rc[2].reply.text, "no such user");
	expect_rcpt(&rc[3], SMTP_OK, 250, "2.0.0");
	assert_int_equal(t.accepted, 2);
	assert_int_equal(t.status, SMTP_OK);
	char *env = sink_file(&s, "env-1.txt", NULL);
	assert_non_null(env);
	assert_non_null(strstr(env, "FROM:<> SIZE="));
	assert_non_null(strstr(env, "TO:<ok1@sink.test>\nTO:<ok2@sink.test>\n"));
	free(env);
	assert_int_equal(!!(r.ext & SMTP_EXT_PIPELINING), pipelined);
	/* pipelined: MAIL was read while the RCPTs were already waiting */
	assert_int_equal(transcript_has(&s, "C: MAIL FROM:<> SIZE=22 [more]"), pipelined);
	assert_int_equal(transcript_has(&s, "[more]"), pipelined);
	msg_free(&m);
	sink_stop(&s);
}

static void test_pipelined_mixed(void **state)
{
	mixed("accept", 1);
}

static void test_unpipelined_mixed(void **state)
{
	mixed("nopipelining", 0);
}

/* Common shape: one message to rcpts at a sink in mode; returns after the run. */
static void deliver_simple(struct sink *s, struct run *r, struct smtp_txn *t, struct smtp_rcpt *rc, size_t n,
    struct msg *m)
{
	msg_make(m, simple, strlen(simple));
	txn_init(t, "sender@client.test", rc, n, m);
	r->txns[0] = t;
	r->ntxn = 1;
	run_client(r, s->port);
}

static void test_helo_fallback(void **state)
{
	struct sink s;
	sink_start(&s, "heloonly");
	struct run r;
	run_init(&r);
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 1, &m);
	assert_int_equal(r.close_st, SMTP_OK);
	expect_rcpt(&rc[0], SMTP_OK, 250, "2.0.0");
	assert_int_equal(r.ext, 0);
	assert_true(transcript_has(&s, "C: HELO client.test"));
	/* no ESMTP: no SIZE parameter */
	assert_true(transcript_has(&s, "C: MAIL FROM:<sender@client.test>\n"));
	msg_free(&m);
	sink_stop(&s);
}

static void test_size_refusal(void **state)
{
	struct sink s;
	sink_start(&s, "size1000");
	char big[2000];
	memset(big, 'x', sizeof(big));
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	struct msg m;
	msg_make(&m, big, sizeof(big));
	struct smtp_rcpt rc[2] = {{.addr = "a@sink.test"}, {.addr = "b@sink.test"}};
	struct smtp_txn t;
	txn_init(&t, "sender@client.test", rc, 2, &m);
	struct run r;
	run_init(&r);
	r.txns[0] = &t;
	r.ntxn = 1;
	run_client(&r, s.port);
	assert_int_equal(r.close_st, SMTP_OK);
	assert_int_equal(t.status, SMTP_PERM);
	assert_int_equal(t.why, SMTP_FAIL_SIZE);
	for (int i = 0; i < 2; i++) {
		expect_rcpt(&rc[i], SMTP_PERM, 0, "5.3.4");
		assert_int_equal(rc[i].why, SMTP_FAIL_SIZE);
	}
	assert_false(transcript_has(&s, "C: MAIL"));
	assert_true(transcript_has(&s, "C: QUIT"));
	msg_free(&m);
	sink_stop(&s);
}

static void test_smtputf8_not_offered(void **state)
{
	struct sink s;
	sink_start(&s, "accept");
	struct msg m;
	msg_make(&m, simple, strlen(simple));
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	txn_init(&t, "sender@client.test", rc, 1, &m);
	t.flags = SMTP_TXN_SMTPUTF8;
	struct run r;
	run_init(&r);
	r.txns[0] = &t;
	r.ntxn = 1;
	run_client(&r, s.port);
	expect_rcpt(&rc[0], SMTP_PERM, 0, "5.6.7");
	assert_int_equal(rc[0].why, SMTP_FAIL_SMTPUTF8);
	assert_false(transcript_has(&s, "C: MAIL"));
	msg_free(&m);
	sink_stop(&s);
}

static void test_data_end_reject(void **state)
{
	struct sink s;
	sink_start(&s, "dataend5xx");
	struct run r;
	run_init(&r);
	struct smtp_rcpt rc[3] = {{.addr = "a@sink.test"}, {.addr = "temp@sink.test"}, {.addr = "b@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 3, &m);
	assert_int_equal(r.close_st, SMTP_OK);
	expect_rcpt(&rc[0], SMTP_PERM, 554, "5.6.0");
	assert_string_equal(rc[0].reply.text, "content rejected");
	expect_rcpt(&rc[1], SMTP_TEMP, 450, "4.2.0");
	expect_rcpt(&rc[2], SMTP_PERM, 554, "5.6.0");
	assert_int_equal(t.status, SMTP_TEMP);   /* one recipient may still succeed later */
	assert_int_equal(t.reply.code, 554);
	assert_int_equal(t.accepted, 0);
	assert_null(sink_file(&s, "msg-1.eml", NULL));
	msg_free(&m);
	sink_stop(&s);
}

static void test_drop_after_mail(void **state)
{
	struct sink s;
	sink_start(&s, "dropmail");
	struct run r;
	run_init(&r);
	struct smtp_rcpt rc[2] = {{.addr = "a@sink.test"}, {.addr = "perm@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 2, &m);
	assert_int_equal(r.close_st, SMTP_TEMP);
	assert_int_equal(r.close_why, SMTP_FAIL_LOST);
	for (int i = 0; i < 2; i++) {
		expect_rcpt(&rc[i], SMTP_TEMP, 0, "4.4.2");
		assert_int_equal(rc[i].why, SMTP_FAIL_LOST);
	}
	assert_int_equal(t.status, SMTP_TEMP);
	msg_free(&m);
	sink_stop(&s);
}

static void test_hang_timeout(void **state)
{
	struct sink s;
	sink_start(&s, "hangehlo");
	struct run r;
	run_init(&r);
	r.p.greeting_ms = 1000;
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 1, &m);
	assert_int_equal(r.close_st, SMTP_TEMP);
	assert_int_equal(r.close_why, SMTP_FAIL_TIMEOUT);
	assert_non_null(strstr(r.close_reply.text, "EHLO"));
	expect_rcpt(&rc[0], SMTP_TEMP, 0, "4.4.2");
	assert_int_equal(rc[0].why, SMTP_FAIL_TIMEOUT);
	msg_free(&m);
	sink_stop(&s);
}

static void test_connection_refused(void **state)
{
	/* a port nobody listens on: bind port 0, note it, close */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {0};
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	socklen_t sl = sizeof(sin);
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	close(fd);
	struct run r;
	run_init(&r);
	run_client(&r, ntohs(sin.sin_port));
	assert_int_equal(r.close_why, SMTP_FAIL_CONNECT);
	assert_string_equal(r.close_reply.text, strerror(ECONNREFUSED));
}

static void tls_case(const char *mode, enum smtp_tls_mode tm, int verify, const char *cafile_ctx)
{
	struct sink s;
	sink_start(&s, mode);
	struct run r;
	run_init(&r);
	r.p.tls = tm;
	r.p.tls_verify = verify;
	SSL_CTX *own = NULL;
	if (cafile_ctx) {
		struct buf e;
		buf_init(&e, 4096);
		own = tls_client_context(cafile_ctx, &e);
		assert_non_null(own);
		buf_free(&e);
		r.p.ssl_ctx = own;
	}
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 1, &m);
	assert_int_equal(r.close_st, SMTP_OK);
	expect_rcpt(&rc[0], SMTP_OK, 250, "2.0.0");
	assert_true(r.tls);
	if (tm != SMTP_TLS_IMPLICIT) {
		assert_true(transcript_has(&s, "C: STARTTLS"));
		/* EHLO again after TLS (RFC 3207 4.2): it no longer offers STARTTLS */
		assert_false(r.ext & SMTP_EXT_STARTTLS);
	}
	char *got = sink_file(&s, "msg-1.eml", NULL);
	assert_non_null(got);
	assert_string_equal(got, simple);
	free(got);
	tls_client_context_free(own);
	msg_free(&m);
	sink_stop(&s);
}

static void test_starttls_opportunistic(void **state)
{
	tls_case("starttls", SMTP_TLS_OPPORTUNISTIC, 0, NULL);
}

static void test_starttls_mandatory(void **state)
{
	tls_case("starttls", SMTP_TLS_MANDATORY, 0, NULL);
}

static void test_starttls_verified(void **state)
{
	tls_case("starttls", SMTP_TLS_MANDATORY, 1, certfile);
}

static void test_implicit_tls(void **state)
{
	tls_case("implicittls", SMTP_TLS_IMPLICIT, 0, NULL);
}

static void test_opportunistic_without_starttls(void **state)
{
	struct sink s;
	sink_start(&s, "accept");
	struct run r;
	run_init(&r);
	r.p.tls = SMTP_TLS_OPPORTUNISTIC;
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 1, &m);
	expect_rcpt(&rc[0], SMTP_OK, 250, "2.0.0");
	assert_false(r.tls);
	msg_free(&m);
	sink_stop(&s);
}

static void tls_failure(const char *mode, enum smtp_tls_mode tm, int verify, enum smtp_failure why)
{
	struct sink s;
	sink_start(&s, mode);
	struct run r;
	run_init(&r);
	r.p.tls = tm;
	r.p.tls_verify = verify;
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 1, &m);
	assert_int_equal(r.close_st, SMTP_TEMP);
	assert_int_equal(r.close_why, why);
	assert_non_null(strstr(r.close_reply.text, "TLS required"));
	expect_rcpt(&rc[0], SMTP_TEMP, 0, rc[0].reply.enhanced);
	assert_int_equal(rc[0].why, why);
	assert_false(transcript_has(&s, "C: MAIL"));
	msg_free(&m);
	sink_stop(&s);
}

static void test_mandatory_not_offered(void **state)
{
	tls_failure("accept", SMTP_TLS_MANDATORY, 0, SMTP_FAIL_TLS_REQUIRED);
}

static void test_mandatory_unverified(void **state)
{
	/* self-signed certificate, system CA store, verification on */
	tls_failure("starttls", SMTP_TLS_MANDATORY, 1, SMTP_FAIL_TLS);
}

static void auth_case(unsigned mechs, const char *pass, const char *want_mech)
{
	struct sink s;
	sink_start(&s, "auth,starttls");
	struct run r;
	run_init(&r);
	r.p.tls = SMTP_TLS_MANDATORY;
	r.p.auth_user = "tester";
	r.p.auth_pass = pass;
	r.p.auth_mechs = mechs;
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 1, &m);
	if (want_mech) {
		assert_int_equal(r.close_st, SMTP_OK);
		expect_rcpt(&rc[0], SMTP_OK, 250, "2.0.0");
		assert_string_equal(r.mech, want_mech);
		char line[64];
		snprintf(line, sizeof(line), "S: 235 2.7.0 authenticated as tester with %s", want_mech);
		assert_true(transcript_has(&s, line));
	} else {
		assert_int_equal(r.close_st, SMTP_PERM);
		assert_int_equal(r.close_why, SMTP_FAIL_AUTH);
		assert_int_equal(r.close_reply.code, 535);
		expect_rcpt(&rc[0], SMTP_PERM, 535, "5.7.8");
		assert_int_equal(rc[0].why, SMTP_FAIL_AUTH);
		assert_false(transcript_has(&s, "C: MAIL"));
	}
	msg_free(&m);
	sink_stop(&s);
}

static void test_auth_plain(void **state)
{
	auth_case(SMTP_AUTH_PLAIN, "s3cret", "PLAIN");
}

static void test_auth_login(void **state)
{
	auth_case(SMTP_AUTH_LOGIN, "s3cret", "LOGIN");
}

static void test_auth_cram_md5(void **state)
{
	auth_case(SMTP_AUTH_CRAM_MD5, "s3cret", "CRAM-MD5");
}

static void test_auth_535(void **state)
{
	auth_case(0, "wrong", NULL);
}

static void test_auth_not_offered(void **state)
{
	struct sink s;
	sink_start(&s, "accept");
	struct run r;
	run_init(&r);
	r.p.auth_user = "tester";
	r.p.auth_pass = "s3cret";
	struct smtp_rcpt rc[1] = {{.addr = "a@sink.test"}};
	struct smtp_txn t;
	struct msg m;
	deliver_simple(&s, &r, &t, rc, 1, &m);
	assert_int_equal(r.close_st, SMTP_TEMP);
	assert_int_equal(r.close_why, SMTP_FAIL_AUTH);
	expect_rcpt(&rc[0], SMTP_TEMP, 0, "4.7.0");
	msg_free(&m);
	sink_stop(&s);
}

static void reuse(const char *mode)
{
	struct sink s;
	sink_start(&s, mode);
	struct msg m1, m2;
	msg_make(&m1, simple, strlen(simple));
	const char second[] = "Subject: two\r\n\r\n.second\r\n";
	msg_make(&m2, second, strlen(second));
	struct smtp_rcpt r0[1] = {{.addr = "perm@sink.test"}};
	struct smtp_rcpt r1[2] = {{.addr = "a@sink.test"}, {.addr = "perm2@sink.test"}};
	struct smtp_rcpt r2[1] = {{.addr = "b@sink.test"}};
	struct smtp_txn t0, t1, t2;
	txn_init(&t0, "s@client.test", r0, 1, &m1);
	txn_init(&t1, "s@client.test", r1, 2, &m1);
	txn_init(&t2, "s@client.test", r2, 1, &m2);
	struct run r;
	run_init(&r);
	r.txns[0] = &t0;
	r.txns[1] = &t1;
	r.txns[2] = &t2;
	r.ntxn = 3;
	run_client(&r, s.port);
	assert_int_equal(r.close_st, SMTP_OK);
	assert_int_equal(r.next, 3);
	assert_int_equal(t0.status, SMTP_PERM);
	expect_rcpt(&r0[0], SMTP_PERM, 550, "5.1.1");
	expect_rcpt(&r1[0], SMTP_OK, 250, "2.0.0");
	expect_rcpt(&r1[1], SMTP_PERM, 550, "5.1.1");
	expect_rcpt(&r2[0], SMTP_OK, 250, "2.0.0");
	assert_true(transcript_has(&s, "C: RSET"));   /* after the failed first transaction */
	char *a = sink_file(&s, "msg-1.eml", NULL), *b = sink_file(&s, "msg-2.eml", NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, simple);
	assert_string_equal(b, second);
	free(a);
	free(b);
	char *t = sink_file(&s, "transcript.txt", NULL);
	const char *p = t;
	int greetings = 0;
	while ((p = strstr(p, "S: 220 sink.test")) != NULL)
		greetings++, p++;
	assert_int_equal(greetings, 1);   /* one connection */
	free(t);
	msg_free(&m1);
	msg_free(&m2);
	sink_stop(&s);
}

static void test_reuse_pipelined(void **state)
{
	reuse("accept");
}

static void test_reuse_unpipelined(void **state)
{
	reuse("nopipelining");
}

/* ---- setup -------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(certdir, sizeof(certdir), "/tmp/smtp-cert-XXXXXX");
	if (!mkdtemp(certdir))
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost "
	    "-addext subjectAltName=DNS:localhost -keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
	    certdir, certdir);
	if (system(cmd) != 0)
		return -1;
	snprintf(certfile, sizeof(certfile), "%s/cert.pem", certdir);
	char key[128];
	snprintf(key, sizeof(key), "%s/key.pem", certdir);
	setenv("SINK_CERT", certfile, 1);
	setenv("SINK_KEY", key, 1);
	struct buf e;
	buf_init(&e, 4096);
	client_ctx = tls_client_context(NULL, &e);
	buf_free(&e);
	return client_ctx ? 0 : -1;
}

static int group_teardown(void **state)
{
	tls_client_context_free(client_ctx);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_dot_stuffing),
		cmocka_unit_test(test_pipelined_mixed),
		cmocka_unit_test(test_unpipelined_mixed),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_size_refusal),
		cmocka_unit_test(test_smtputf8_not_offered),
		cmocka_unit_test(test_data_end_reject),
		cmocka_unit_test(test_drop_after_mail),
		cmocka_unit_test(test_hang_timeout),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_starttls_opportunistic),
		cmocka_unit_test(test_starttls_mandatory),
		cmocka_unit_test(test_starttls_verified),
		cmocka_unit_test(test_implicit_tls),
		cmocka_unit_test(test_opportunistic_without_starttls),
		cmocka_unit_test(test_mandatory_not_offered),
		cmocka_unit_test(test_mandatory_unverified),
		cmocka_unit_test(test_auth_plain),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_cram_md5),
		cmocka_unit_test(test_auth_535),
		cmocka_unit_test(test_auth_not_offered),
		cmocka_unit_test(test_reuse_pipelined),
		cmocka_unit_test(test_reuse_unpipelined),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
