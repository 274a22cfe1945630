/*
 * Unit tests for src/deliver/conncache.c (D1 connection reuse) with the real
 * SMTP client against tests/unit/smtp_sink.py on loopback: a parked
 * connection carries the next message after RSET (one greeting for two
 * messages), only an equivalent session is handed out (HELO name, AUTH
 * identity, TLS mode, port; the server name only when verified), idle
 * connections get QUIT on expiry, eviction and shutdown, a peer that closes
 * an idle connection is noticed without a QUIT, a spent connection is not
 * kept, and a stale one fails its transaction before MAIL is accepted
 * (mail_accepted = 0), which is what tells remote.c to reconnect.
 * Every wait is bounded (sink start 5 s, each loop run a few seconds).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>

#include "deliver/conncache.h"
#include "deliver/smtp_client.h"

#include "loopback.h"
#include "smtp_sink.h"

static const char simple[] = "Subject: hi\r\n\r\nhello\r\n";

/* ---- one party using connections: a job, as remote.c is ----------------------------- */

struct party {
	struct event_base *base;
	struct conncache *cc;
	int port;
	struct smtp_client_params p;
	struct smtp_client *c;        /* while it is ours */
	struct smtp_client *last;     /* the client of the last transaction */
	struct smtp_txn *txn;         /* sent once connected */
	int txns, closes;             /* callbacks seen */
	enum smtp_failure close_why;
	int park;                     /* park after a successful transaction */
	int parked;
};

static void p_on_txn(struct smtp_client *c, struct smtp_txn *t, void *arg)
{
	struct party *k = arg;
	k->txns++;
	k->last = c;
	k->parked = k->park && t->status == SMTP_OK && conncache_put(k->cc, c, "127.0.0.1", (unsigned)k->port, &k->p);
	if (k->parked)
		k->c = NULL;
	else
		smtp_client_quit(c);
}

static void p_on_close(struct smtp_client *c, enum smtp_status st, enum smtp_failure why, const struct smtp_reply *rep,
    void *arg)
{
	struct party *k = arg;
	k->closes++;
	k->close_why = why;
	k->c = NULL;
}

static void p_on_connected(int fd, int err, void *arg)
{
	struct party *k = arg;
	assert_true(fd >= 0);
	k->c = smtp_client_new(k->base, fd, &k->p, p_on_txn, p_on_close, k);
	assert_int_equal(smtp_client_send(k->c, k->txn), 0);
}

static void party_init(struct party *k, struct event_base *base, struct conncache *cc, int port, const char *tag)
{
	memset(k, 0, sizeof(*k));
	k->base = base;
	k->cc = cc;
	k->port = port;
	k->park = 1;
	smtp_client_params_defaults(&k->p);
	k->p.helo = "client.test";
	k->p.tag = tag;
	k->p.greeting_ms = k->p.mail_ms = k->p.rcpt_ms = k->p.data_init_ms = k->p.data_block_ms = k->p.data_end_ms = 3000;
}

/* A fresh connection that runs t; returns when its transaction is over. */
static void party_connect(struct party *k, struct smtp_txn *t)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)k->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	k->txn = t;
	int want = k->txns + 1;
	smtp_client_connect(k->base, (struct sockaddr *)&sin, sizeof(sin), 2000, p_on_connected, k);
	run_until(k->base, &k->txns, want, 5000);
	assert_int_equal(k->txns, want);
}

/* Take a cached connection for k; NULL when the cache has none that fits. */
static struct smtp_client *party_take(struct party *k)
{
	k->c = conncache_take(k->cc, "127.0.0.1", (unsigned)k->port, &k->p, p_on_txn, p_on_close, k);
	return k->c;
}

/* Run t on the connection k took; returns when its transaction is over. */
static void party_send(struct party *k, struct smtp_txn *t)
{
	int want = k->txns + 1;
	assert_int_equal(smtp_client_send(k->c, t), 0);
	run_until(k->base, &k->txns, want, 5000);
	assert_int_equal(k->txns, want);
}

/* ---- messages ------------------------------------------------------------------- */

struct msg {
	int fd;
	char path[64];
	struct smtp_rcpt rcpt[1];
	struct smtp_txn t;
};

static void msg_init(struct msg *m, const char *rcpt)
{
	snprintf(m->path, sizeof(m->path), "/tmp/conncache-msg-XXXXXX");
	m->fd = mkstemp(m->path);
	assert_true(m->fd >= 0);
	assert_int_equal(write(m->fd, simple, strlen(simple)), (ssize_t)strlen(simple));
	memset(m->rcpt, 0, sizeof(m->rcpt));
	m->rcpt[0].addr = rcpt;
	memset(&m->t, 0, sizeof(m->t));
	m->t.sender = "s@client.test";
	m->t.rcpts = m->rcpt;
	m->t.nrcpt = 1;
	m->t.fd = m->fd;
	m->t.length = (off_t)strlen(simple);
}

static void msg_free(struct msg *m)
{
	close(m->fd);
	unlink(m->path);
}

/* Run the loop until the cache has nothing idle and nothing closing (or ms passed). */
static void drain(struct event_base *base, struct conncache *cc, int ms)
{
	for (int waited = 0; waited < ms && (conncache_idle(cc) || conncache_closing(cc)); waited += 50)
		run_until(base, NULL, 0, 50);
}

struct fixture {
	struct sink s;
	struct event_base *base;
	struct conncache *cc;
};

static void fixture_start(struct fixture *f, const char *modes, size_t max_idle, unsigned idle_ms, unsigned max_txns)
{
	sink_start(&f->s, modes);
	f->base = event_base_new();
	f->cc = conncache_new(f->base);
	conncache_set_limits(f->cc, max_idle, idle_ms, max_txns);
}

static void fixture_stop(struct fixture *f)
{
	conncache_free(f->cc);
	event_base_free(f->base);
	sink_stop(&f->s);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_park_and_take(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept", 4, 5000, 100);
	struct party a, b;
	struct msg m1, m2;
	msg_init(&m1, "one@sink.test");
	msg_init(&m2, "two@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m1.t);
	assert_int_equal(m1.t.status, SMTP_OK);
	assert_true(m1.t.mail_accepted);
	assert_true(a.parked);
	assert_int_equal(conncache_idle(f.cc), 1);

	/* Only an equivalent session is handed out. */
	party_init(&b, f.base, f.cc, f.s.port, "b (another tag: not part of the key)");
	b.p.helo = "other.test";
	assert_null(party_take(&b));
	b.p.helo = "client.test";
	b.p.auth_user = "tester";
	b.p.auth_pass = "s3cret";
	assert_null(party_take(&b));
	b.p.auth_user = b.p.auth_pass = NULL;
	b.p.tls = SMTP_TLS_OPPORTUNISTIC;
	assert_null(party_take(&b));
	b.p.tls = SMTP_TLS_NONE;
	b.port = f.s.port + 1;
	assert_null(party_take(&b));
	b.port = f.s.port;
	b.p.tls_verify = 1;
	assert_null(party_take(&b));
	b.p.tls_verify = 0;
	b.p.tls_servername = "another.name";   /* unverified: only SNI, not part of the key */
	assert_int_equal(conncache_hits(f.cc), 0);
	assert_non_null(party_take(&b));
	assert_int_equal(conncache_idle(f.cc), 0);
	assert_int_equal(conncache_hits(f.cc), 1);
	assert_null(party_take(&a));   /* taken: nothing left */

	/* The second message over the same connection, after RSET. */
	party_send(&b, &m2.t);
	assert_int_equal(m2.t.status, SMTP_OK);
	assert_true(m2.t.mail_accepted);
	assert_ptr_equal(b.last, a.last);
	assert_true(b.parked);
	assert_int_equal(conncache_idle(f.cc), 1);
	assert_int_equal(transcript_count(&f.s, "S: 220 sink.test"), 1);
	assert_int_equal(transcript_count(&f.s, "C: RSET"), 1);
	assert_true(transcript_has(&f.s, "C: RSET\nS: 250 2.0.0 ok\nC: MAIL FROM:<s@client.test>"));
	char *e2 = sink_file(&f.s, "env-2.txt", NULL);
	assert_non_null(e2);
	assert_non_null(strstr(e2, "TO:<two@sink.test>"));
	free(e2);
	assert_int_equal(a.closes + b.closes, 0);
	msg_free(&m1);
	msg_free(&m2);
	fixture_stop(&f);
}

static void test_expiry_sends_quit(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept", 4, 300, 100);
	struct party a;
	struct msg m;
	msg_init(&m, "one@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m.t);
	assert_true(a.parked);
	long t0 = now_ms();
	drain(f.base, f.cc, 3000);
	assert_int_equal(conncache_idle(f.cc), 0);
	assert_int_equal(conncache_closing(f.cc), 0);
	assert_true(now_ms() - t0 >= 250);
	assert_true(transcript_has(&f.s, "C: QUIT\nS: 221"));
	assert_int_equal(a.closes, 0);   /* the cache's callbacks, not the party's */
	msg_free(&m);
	fixture_stop(&f);
}

static void test_peer_close_noticed(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept,closeafterdata", 4, 5000, 100);
	struct party a;
	struct msg m;
	msg_init(&m, "one@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m.t);
	assert_int_equal(m.t.status, SMTP_OK);
	assert_true(a.parked);
	drain(f.base, f.cc, 3000);   /* far less than the idle time: the close was seen */
	assert_int_equal(conncache_idle(f.cc), 0);
	assert_false(transcript_has(&f.s, "C: QUIT"));
	struct party b;
	party_init(&b, f.base, f.cc, f.s.port, "b");
	assert_null(party_take(&b));
	msg_free(&m);
	fixture_stop(&f);
}

static void test_reuse_limit(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept", 4, 5000, 2);
	struct party a, b;
	struct msg m1, m2;
	msg_init(&m1, "one@sink.test");
	msg_init(&m2, "two@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m1.t);
	assert_true(a.parked);
	party_init(&b, f.base, f.cc, f.s.port, "b");
	assert_non_null(party_take(&b));
	party_send(&b, &m2.t);
	assert_int_equal(m2.t.status, SMTP_OK);
	assert_false(b.parked);   /* two transactions: spent, closed by its owner */
	run_until(f.base, &b.closes, 1, 3000);
	assert_int_equal(b.closes, 1);
	assert_int_equal(conncache_idle(f.cc), 0);
	assert_true(transcript_has(&f.s, "C: QUIT"));
	msg_free(&m1);
	msg_free(&m2);
	fixture_stop(&f);
}

static void test_full_cache_closes_oldest(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept", 1, 5000, 100);
	struct party a, b;
	struct msg m1, m2;
	msg_init(&m1, "one@sink.test");
	msg_init(&m2, "two@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m1.t);
	party_init(&b, f.base, f.cc, f.s.port, "b");
	party_connect(&b, &m2.t);
	assert_true(a.parked && b.parked);
	assert_int_equal(conncache_idle(f.cc), 1);
	assert_int_equal(conncache_closing(f.cc), 1);
	for (int i = 0; i < 60 && conncache_closing(f.cc); i++)
		run_until(f.base, NULL, 0, 50);
	assert_int_equal(conncache_closing(f.cc), 0);
	assert_int_equal(transcript_count(&f.s, "C: QUIT"), 1);
	struct party c;
	party_init(&c, f.base, f.cc, f.s.port, "c");
	assert_ptr_equal(party_take(&c), b.last);   /* the newer one stayed */
	smtp_client_free(c.c);
	msg_free(&m1);
	msg_free(&m2);
	fixture_stop(&f);
}

static void test_stale_connection(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept,rset421", 4, 5000, 100);
	struct party a, b;
	struct msg m1, m2;
	msg_init(&m1, "one@sink.test");
	msg_init(&m2, "two@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m1.t);
	assert_true(a.parked);
	party_init(&b, f.base, f.cc, f.s.port, "b");
	assert_non_null(party_take(&b));
	party_send(&b, &m2.t);
	/* RSET got 421: the transaction failed before MAIL was accepted; nothing was sent. */
	assert_int_equal(m2.t.status, SMTP_TEMP);
	assert_false(m2.t.mail_accepted);
	assert_int_equal(m2.t.reply.code, 421);
	assert_int_equal(m2.rcpt[0].status, SMTP_TEMP);
	assert_false(transcript_has(&f.s, "RCPT TO:<two@sink.test>"));
	run_until(f.base, &b.closes, 1, 3000);
	assert_int_equal(b.closes, 1);
	assert_false(b.parked);
	assert_null(sink_file(&f.s, "msg-2.eml", NULL));
	msg_free(&m1);
	msg_free(&m2);
	fixture_stop(&f);
}

static int drained_calls;

static void on_drained(void *arg)
{
	drained_calls++;
}

static void test_close_all(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept", 4, 60000, 100);
	struct party a, b;
	struct msg m1, m2;
	msg_init(&m1, "one@sink.test");
	msg_init(&m2, "two@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m1.t);
	party_init(&b, f.base, f.cc, f.s.port, "b");
	party_connect(&b, &m2.t);
	assert_int_equal(conncache_idle(f.cc), 2);
	drained_calls = 0;
	assert_int_equal(conncache_close_all(f.cc, on_drained, NULL), 2);
	assert_int_equal(conncache_idle(f.cc), 0);
	run_until(f.base, &drained_calls, 1, 3000);
	assert_int_equal(drained_calls, 1);
	assert_int_equal(conncache_closing(f.cc), 0);
	assert_int_equal(transcript_count(&f.s, "C: QUIT"), 2);
	/* stopping: nothing more is kept */
	struct msg m3;
	msg_init(&m3, "three@sink.test");
	struct party c;
	party_init(&c, f.base, f.cc, f.s.port, "c");
	party_connect(&c, &m3.t);
	assert_int_equal(m3.t.status, SMTP_OK);
	assert_false(c.parked);
	run_until(f.base, &c.closes, 1, 3000);
	msg_free(&m1);
	msg_free(&m2);
	msg_free(&m3);
	fixture_stop(&f);
}

static void test_caching_off(void **state)
{
	struct fixture f;
	fixture_start(&f, "accept", 0, 5000, 100);
	struct party a;
	struct msg m;
	msg_init(&m, "one@sink.test");
	party_init(&a, f.base, f.cc, f.s.port, "a");
	party_connect(&a, &m.t);
	assert_int_equal(m.t.status, SMTP_OK);
	assert_false(a.parked);
	run_until(f.base, &a.closes, 1, 3000);
	assert_int_equal(a.closes, 1);
	msg_free(&m);
	fixture_stop(&f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_park_and_take),
		cmocka_unit_test(test_expiry_sends_quit),
		cmocka_unit_test(test_peer_close_noticed),
		cmocka_unit_test(test_reuse_limit),
		cmocka_unit_test(test_full_cache_closes_oldest),
		cmocka_unit_test(test_stale_connection),
		cmocka_unit_test(test_close_all),
		cmocka_unit_test(test_caching_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
