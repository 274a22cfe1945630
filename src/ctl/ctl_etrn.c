/*
 * ctl_etrn: `tsubamectl etrn [options] HOST[:PORT] ARG...` — ask a mail server
 * that holds our mail to start delivering it (E4; RFC 1985 ETRN; the Lotus
 * Domino manual's "pull request" by hand, or its telnet check of EHLO).
 *
 * A small blocking client, as befits a command line: connect (the hosts
 * table first, as the daemon does for etrn_server, then the resolver), read
 * the greeting, EHLO, STARTTLS when asked (--starttls: required), check that
 * ETRN is offered (RFC 1985 4; --force sends it anyway), one ETRN per
 * argument — a domain, @domain (with its subdomains) or #queue — printing
 * each reply as "ARG: CODE TEXT", then QUIT.  Every step has a deadline
 * (--timeout, 30 s by default).
 *
 * Exit status: 0 every ETRN accepted (2xx: 250, 251, 252, 253); 1 at least one
 * refused or failed (458, 459, 4xx, 5xx) or ETRN not offered; 2 usage (a
 * malformed argument too); 4 the server could not be reached or the session
 * broke (connect, greeting, timeout, TLS, connection lost).
 *
 * SECURITY: runs as whoever calls it; needs no privilege and touches no
 * file but the configuration and the hosts table.  Everything the server
 * sends is bounded (ETRN_LINE_MAX per line, ETRN_REPLY_LINES_MAX per reply)
 * and printed only after etrn_clean_text() replaced unprintable bytes, so a
 * server cannot write terminal control sequences.  The certificate is not
 * verified (like smart hosts): --starttls encrypts, it does not authenticate.
 */
#include "ctl/ctl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "deliver/etrn_proto.h"
#include "deliver/hosts.h"
#include "policy/atrn_args.h"
#include "tls/tls_client.h"
#include "util/xalloc.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 4

struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char in[ETRN_LINE_MAX + 512];
	size_t have;
	int timeout_ms;
	int verbose;
	char peer[ETRN_HOST_MAX + 64];
};

static void usage(void)
{
	fprintf(stderr, "usage: tsubamectl etrn [--starttls] [--force] [--timeout SECONDS] [--helo NAME] [-v] "
			"HOST[:PORT] DOMAIN|@DOMAIN|#QUEUE...\n");
}

static long long ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 ready, 0 deadline passed, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - ms_now();
		if (left <= 0)
			return 0;
		struct pollfd p = { fd, events, 0 };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 1;
	}
}

/* >0 bytes, 0 end of stream, -1 error, -2 deadline. */
static ssize_t conn_read(struct conn *c, char *buf, size_t n, long long deadline)
{
	for (;;) {
		short ev = POLLIN;
		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, buf, (int)n);
			if (r > 0)
				return r;
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (e == SSL_ERROR_WANT_WRITE)
				ev = POLLOUT;
			else if (e != SSL_ERROR_WANT_READ)
				return e == SSL_ERROR_SYSCALL && r == 0 ? 0 : -1;
		} else {
			ssize_t r = recv(c->fd, buf, n, 0);
			if (r >= 0)
				return r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
		}
		int w = wait_fd(c->fd, ev, deadline);
		if (w <= 0)
			return w == 0 ? -2 : -1;
	}
}

static int conn_write(struct conn *c, const char *s, size_t n, long long deadline)
{
	while (n > 0) {
		short ev = POLLOUT;
		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_write(c->ssl, s, (int)n);
			if (r > 0) {
				s += r;
				n -= (size_t)r;
				continue;
			}
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				ev = POLLIN;
			else if (e != SSL_ERROR_WANT_WRITE)
				return -1;
		} else {
			ssize_t r = send(c->fd, s, n, MSG_NOSIGNAL);
			if (r > 0) {
				s += r;
				n -= (size_t)r;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
		}
		if (wait_fd(c->fd, ev, deadline) <= 0)
			return -1;
	}
	return 0;
}

/* One line (without its LF) into line.  0, or -1 with the reason printed. */
static int read_line(struct conn *c, char *line, size_t max, size_t *len, long long deadline, const char *what)
{
	for (;;) {
		char *lf = memchr(c->in, '\n', c->have);
		if (lf) {
			size_t n = (size_t)(lf - c->in);
			if (n >= max) {
				fprintf(stderr, "tsubamectl: etrn: %s: reply line too long while waiting for the %s\n", c->peer, what);
				return -1;
			}
			memcpy(line, c->in, n);
			line[n] = '\0';
			*len = n;
			memmove(c->in, lf + 1, c->have - n - 1);
			c->have -= n + 1;
			return 0;
		}
		if (c->have >= max) {
			fprintf(stderr, "tsubamectl: etrn: %s: reply line too long while waiting for the %s\n", c->peer, what);
			return -1;
		}
		ssize_t r = conn_read(c, c->in + c->have, sizeof(c->in) - c->have, deadline);
		if (r > 0) {
			c->have += (size_t)r;
			continue;
		}
		fprintf(stderr, "tsubamectl: etrn: %s: %s while waiting for the %s\n", c->peer,
		    r == -2 ? "timeout" : r == 0 ? "connection closed by the server" : "connection lost", what);
		return -1;
	}
}

/* One whole reply.  0, or -1 (printed). */
static int read_reply(struct conn *c, struct etrn_reply *r, const char *what)
{
	long long deadline = ms_now() + c->timeout_ms;
	char line[ETRN_LINE_MAX + 2];
	size_t len;
	etrn_reply_init(r);
	for (;;) {
		if (read_line(c, line, sizeof(line), &len, deadline, what) < 0)
			return -1;
		if (c->verbose) {
			char clean[ETRN_LINE_MAX + 2];
			etrn_clean_text(clean, sizeof(clean), line, len && line[len - 1] == '\r' ? len - 1 : len);
			fprintf(stderr, "S: %s\n", clean);
		}
		int k = etrn_reply_feed(r, line, len);
		if (k < 0) {
			fprintf(stderr, "tsubamectl: etrn: %s: malformed reply while waiting for the %s\n", c->peer, what);
			return -1;
		}
		if (k == 1)
			return 0;
	}
}

static int command(struct conn *c, const char *cmd, struct etrn_reply *r, const char *what)
{
	char line[ETRN_ARG_MAX + 32];
	int n = snprintf(line, sizeof(line), "%s\r\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	if (c->verbose)
		fprintf(stderr, "C: %s\n", cmd);
	if (conn_write(c, line, (size_t)n, ms_now() + c->timeout_ms) < 0) {
		fprintf(stderr, "tsubamectl: etrn: %s: cannot send %s: connection lost\n", c->peer, what);
		return -1;
	}
	return read_reply(c, r, what);
}

/* Non-blocking connect to one address within the deadline: fd or -1 (errno). */
static int connect_one(const struct sockaddr *sa, socklen_t salen, int timeout_ms)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, sa, salen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	int w = wait_fd(fd, POLLOUT, ms_now() + timeout_ms);
	int err = 0;
	socklen_t elen = sizeof(err);
	if (w <= 0)
		err = w == 0 ? ETIMEDOUT : errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err) {
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static int try_addr(struct conn *c, const char *host, const char *ip, unsigned port, int *last_err)
{
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if (getaddrinfo(ip, portstr, &hints, &res) != 0 || !res)
		return -1;
	int fd = connect_one(res->ai_addr, res->ai_addrlen, c->timeout_ms);
	*last_err = errno;
	freeaddrinfo(res);
	if (fd >= 0) {
		c->fd = fd;
		snprintf(c->peer, sizeof(c->peer), "%s[%s]:%u", host, ip, port);
	}
	return fd;
}

/* Connect: an address as given, the hosts table, then the resolver.  0, or -1 (printed). */
static int open_conn(struct ctl *ctl, struct conn *c, const char *host, unsigned port, int port_given)
{
	int err = 0;
	unsigned char tmp[sizeof(struct in6_addr)];
	snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
	if (inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1) {
		if (try_addr(c, host, host, port, &err) >= 0)
			return 0;
	} else {
		struct hosts_table ht = { NULL, 0 };
		struct buf errors;
		buf_init(&errors, 4096);
		char *hp = config_path(&ctl->cfg, ctl->cfg.hosts_file);
		if (hosts_load(&ht, hp, &errors) != 0)
			fprintf(stderr, "tsubamectl: etrn: warning: %s", buf_cstr(&errors));
		free(hp);
		buf_free(&errors);
		const struct hosts_entry *he = hosts_lookup(&ht, host);
		int found = he != NULL;
		for (size_t i = 0; he && i < he->naddrs; i++) {
			unsigned p = port_given || he->addrs[i].port == 0 ? port : he->addrs[i].port;
			if (try_addr(c, host, he->addrs[i].ip, p, &err) >= 0) {
				hosts_free(&ht);
				return 0;
			}
		}
		hosts_free(&ht);
		if (!found) {
			struct addrinfo hints, *res = NULL;
			char portstr[8];
			memset(&hints, 0, sizeof(hints));
			hints.ai_socktype = SOCK_STREAM;
			hints.ai_flags = AI_NUMERICSERV;
			snprintf(portstr, sizeof(portstr), "%u", port);
			int g = getaddrinfo(host, portstr, &hints, &res);
			if (g != 0) {
				fprintf(stderr, "tsubamectl: etrn: %s: %s\n", host, gai_strerror(g));
				return -1;
			}
			for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
				char ip[INET6_ADDRSTRLEN];
				if (getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) != 0)
					continue;
				if (try_addr(c, host, ip, port, &err) >= 0) {
					freeaddrinfo(res);
					return 0;
				}
			}
			freeaddrinfo(res);
		}
	}
	fprintf(stderr, "tsubamectl: etrn: cannot connect to %s:%u: %s\n", host, port, err ? strerror(err) : "no address");
	return -1;
}

static int start_tls(struct conn *c, const char *host)
{
	struct buf errors;
	buf_init(&errors, 4096);
	c->ctx = tls_client_context(NULL, &errors);
	if (!c->ctx) {
		fprintf(stderr, "tsubamectl: etrn: TLS unavailable: %s", buf_cstr(&errors));
		buf_free(&errors);
		return -1;
	}
	buf_free(&errors);
	c->ssl = tls_client_session(c->ctx, host, 0);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		goto fail;
	/* RFC 3207 4.2: nothing the server sent before the handshake is believed. */
	c->have = 0;
	long long deadline = ms_now() + c->timeout_ms;
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(c->ssl, r);
		short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
		if (!ev || wait_fd(c->fd, ev, deadline) <= 0)
			goto fail;
	}
	if (c->verbose)
		fprintf(stderr, "TLS: %s %s\n", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	return 0;
fail:
	fprintf(stderr, "tsubamectl: etrn: %s: TLS handshake failed\n", c->peer);
	return -1;
}

static void conn_close(struct conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->ctx) {
		tls_client_context_free(c->ctx);
		c->ctx = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void quit(struct conn *c)
{
	struct etrn_reply r;
	int saved = c->timeout_ms;
	c->timeout_ms = saved < 5000 ? saved : 5000; /* the answer to QUIT changes nothing */
	int v = c->verbose;
	if (command(c, "QUIT", &r, "QUIT reply") < 0 && v)
		fprintf(stderr, "tsubamectl: etrn: (no answer to QUIT)\n");
	c->timeout_ms = saved;
}

/*
 * The options etrn and atrn share: --starttls, -v, --timeout S, --helo NAME,
 * and "--".  Returns 1 when argv[*i] was one (consumed, *i moved past its
 * value), 0 when it is not ours, -1 after a usage message for a bad value.
 */
struct client_opts {
	int starttls, verbose;
	long timeout;
	const char *helo;
};

static int client_option(const char *cmd, int argc, char **argv, int *i, struct client_opts *o)
{
	const char *a = argv[*i];
	if (!strcmp(a, "--starttls")) {
		o->starttls = 1;
	} else if (!strcmp(a, "-v")) {
		o->verbose = 1;
	} else if (!strcmp(a, "--timeout") && *i + 1 < argc) {
		const char *v = argv[++*i];
		char *end;
		o->timeout = strtol(v, &end, 10);
		if (*v < '0' || *v > '9' || *end || o->timeout < 1 || o->timeout > 3600) {
			fprintf(stderr, "tsubamectl: %s: --timeout takes 1 to 3600 seconds\n", cmd);
			return -1;
		}
	} else if (!strcmp(a, "--helo") && *i + 1 < argc) {
		o->helo = argv[++*i];
	} else {
		return 0;
	}
	return 1;
}

int ctl_etrn(struct ctl *ctl, int argc, char **argv)
{
	int force = 0;
	struct client_opts opt = { 0, 0, 30, ctl->cfg.hostname };
	int i = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		int r = client_option("etrn", argc, argv, &i, &opt);
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "--force"))
			force = 1;
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else {
			usage();
			return EXIT_USAGE;
		}
	}
	int starttls = opt.starttls, verbose = opt.verbose;
	long timeout = opt.timeout;
	const char *helo = opt.helo;
	if (argc - i < 2) {
		usage();
		return EXIT_USAGE;
	}
	char host[ETRN_HOST_MAX], why[128];
	unsigned port;
	int port_given;
	if (etrn_server_parse(argv[i], host, sizeof(host), &port, &port_given, why, sizeof(why)) < 0) {
		fprintf(stderr, "tsubamectl: etrn: '%s' is not HOST[:PORT] (%s)\n", argv[i], why);
		return EXIT_USAGE;
	}
	char *const *args = argv + i + 1;
	size_t nargs = (size_t)(argc - i - 1);
	for (size_t k = 0; k < nargs; k++)
		if (etrn_arg_check(args[k], why, sizeof(why)) < 0) {
			fprintf(stderr, "tsubamectl: etrn: '%s': %s\n", args[k], why);
			return EXIT_USAGE;
		}
	for (const char *h = helo; *h; h++)
		if ((unsigned char)*h <= 0x20 || (unsigned char)*h >= 0x7f) {
			fprintf(stderr, "tsubamectl: etrn: --helo: not a host name\n");
			return EXIT_USAGE;
		}

	struct conn c;
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.timeout_ms = (int)timeout * 1000;
	c.verbose = verbose;
	struct etrn_reply r;
	char cmd[ETRN_ARG_MAX + 16];
	int rc = EXIT_UNREACHABLE;
	if (open_conn(ctl, &c, host, port, port_given) < 0)
		goto done;
	if (verbose)
		fprintf(stderr, "connected to %s\n", c.peer);
	if (read_reply(&c, &r, "greeting") < 0)
		goto done;
	if (r.code != 220) {
		fprintf(stderr, "tsubamectl: etrn: %s: greeting %d %s\n", c.peer, r.code, r.text);
		goto done;
	}
	snprintf(cmd, sizeof(cmd), "EHLO %s", helo);
	if (command(&c, cmd, &r, "EHLO reply") < 0)
		goto done;
	unsigned ehlo = r.code == 250 ? r.ehlo : 0;
	if (r.code != 250) {
		fprintf(stderr, "tsubamectl: etrn: %s: EHLO refused: %d %s\n", c.peer, r.code, r.text);
		if (!force) {
			rc = EXIT_REFUSED;
			quit(&c);
			goto done;
		}
		snprintf(cmd, sizeof(cmd), "HELO %s", helo);
		if (command(&c, cmd, &r, "HELO reply") < 0)
			goto done;
		if (r.code != 250) {
			fprintf(stderr, "tsubamectl: etrn: %s: HELO refused: %d %s\n", c.peer, r.code, r.text);
			rc = EXIT_REFUSED;
			quit(&c);
			goto done;
		}
	}
	if (starttls) {
		if (!(ehlo & ETRN_EHLO_STARTTLS)) {
			fprintf(stderr, "tsubamectl: etrn: %s: STARTTLS is not offered\n", c.peer);
			quit(&c);
			goto done;
		}
		if (command(&c, "STARTTLS", &r, "STARTTLS reply") < 0)
			goto done;
		if (r.code != 220) {
			fprintf(stderr, "tsubamectl: etrn: %s: STARTTLS refused: %d %s\n", c.peer, r.code, r.text);
			quit(&c);
			goto done;
		}
		if (start_tls(&c, host) < 0)
			goto done;
		snprintf(cmd, sizeof(cmd), "EHLO %s", helo);
		if (command(&c, cmd, &r, "EHLO reply") < 0)
			goto done;
		if (r.code != 250) {
			fprintf(stderr, "tsubamectl: etrn: %s: EHLO after STARTTLS refused: %d %s\n", c.peer, r.code, r.text);
			quit(&c);
			goto done;
		}
		ehlo = r.ehlo;
	}
	if (!(ehlo & ETRN_EHLO_ETRN)) {
		if (!force) {
			/* RFC 1985 4: the client checks the EHLO reply before it uses ETRN. */
			fprintf(stderr, "tsubamectl: etrn: %s does not offer ETRN (not in its EHLO reply); nothing sent "
					"(--force sends it anyway)\n", c.peer);
			rc = EXIT_REFUSED;
			quit(&c);
			goto done;
		}
		fprintf(stderr, "tsubamectl: etrn: warning: %s does not offer ETRN; sending it anyway (--force)\n", c.peer);
	}
	int refused = 0, broken = 0;
	for (size_t k = 0; k < nargs; k++) {
		snprintf(cmd, sizeof(cmd), "ETRN %s", args[k]);
		if (command(&c, cmd, &r, "ETRN reply") < 0) {
			broken = 1;
			for (size_t j = k; j < nargs; j++)
				printf("%s: no answer\n", args[j]);
			break;
		}
		enum etrn_outcome o = etrn_outcome_of(r.code);
		if (o == ETRN_ACCEPTED)
			printf("%s: %d %s\n", args[k], r.code, r.text);
		else
			printf("%s: %d %s (%s: %s)\n", args[k], r.code, r.text, etrn_outcome_name(o), etrn_code_meaning(r.code));
		if (o != ETRN_ACCEPTED)
			refused = 1;
		if (r.code == 421) {
			broken = 1;
			for (size_t j = k + 1; j < nargs; j++)
				printf("%s: not sent (the server closed the session)\n", args[j]);
			break;
		}
	}
	fflush(stdout);
	if (!broken)
		quit(&c);
	rc = broken ? EXIT_UNREACHABLE : refused ? EXIT_REFUSED : 0;
done:
	conn_close(&c);
	return rc;
}

/* ---- tsubamectl atrn: the customer's side of ATRN (E6, RFC 2645; docs/atrn.md) ----------------
 *
 * tsubamectl atrn [--starttls] [--user U --password-file F] [--timeout S] [--helo NAME] [-v]
 *                 HOST[:PORT] [DOMAIN...]
 *
 * The same small blocking client as etrn (it shares its connection code):
 * connect (port 366 by default), greeting, EHLO, STARTTLS when asked, AUTH
 * PLAIN (the account from --user/--password-file, else smarthost_auth_user /
 * smarthost_auth_password of the configuration), "ATRN d1,d2" (all our held
 * domains when none is given).  On 250 the roles reverse: we do not speak SMTP
 * ourselves but splice the connection into our own smtpd (the first `listen`
 * address of the configuration), which greets the provider, receives the mail
 * for our domains durably and answers its QUIT.  We parse none of those bytes.
 *
 * Exit status: 0 the mail was collected (or 453: no mail waiting); 1 refused
 * (AUTH, ATRN, EHLO without ATRN); 2 usage; 4 unreachable or broken.
 */
#define ATRN_IDLE_DEFAULT 300
#define ATRN_SPLICE_MAX_MS (4LL * 3600 * 1000)

static void atrn_usage(void)
{
	fprintf(stderr, "usage: tsubamectl atrn [--starttls] [--user USER --password-file FILE] [--timeout SECONDS] "
			"[--helo NAME] [-v] HOST[:PORT] [DOMAIN...]\n");
}

/* Connect to our own first listen address (blocking, with a timeout). */
static int connect_own_smtpd(const struct config *cfg, int timeout_ms)
{
	if (cfg->nlisten == 0)
		return -1;
	const struct listen_addr *la = &cfg->listen[0];
	const char *host = !strcmp(la->host, "*") ? "127.0.0.1" : la->host;
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, la->port, &hints, &res) != 0)
		return -1;
	int fd = connect_one(res->ai_addr, res->ai_addrlen, timeout_ms);
	freeaddrinfo(res);
	return fd;
}

/* Copy bytes both ways until either side closes.  0, or -1 on a timeout or an error. */
static int splice_loop(struct conn *c, int lfd, int idle_ms, unsigned long long *up, unsigned long long *down)
{
	char buf[16384];
	long long started = ms_now();
	/* what the provider sent right after its 250 (its first bytes as our client) goes first */
	if (c->have > 0) {
		if (send(lfd, c->in, c->have, MSG_NOSIGNAL) != (ssize_t)c->have)
			return -1;
		*down += c->have;
		c->have = 0;
	}
	for (;;) {
		if (ms_now() - started > ATRN_SPLICE_MAX_MS)
			return -1;
		int remote_ready = c->ssl && SSL_pending(c->ssl) > 0;
		struct pollfd p[2] = { { c->fd, POLLIN, 0 }, { lfd, POLLIN, 0 } };
		int r = remote_ready ? 1 : poll(p, 2, idle_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;   /* idle for too long */
		if (remote_ready || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = conn_read(c, buf, sizeof(buf), ms_now() + idle_ms);
			if (n == 0)
				return 0;
			if (n < 0)
				return n == -2 ? -1 : 0;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(lfd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					return 0;   /* our smtpd closed */
				off += w;
			}
			*down += (unsigned long long)n;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(lfd, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 0;   /* our smtpd said 221 and closed: done */
			if (conn_write(c, buf, (size_t)n, ms_now() + idle_ms) < 0)
				return 0;
			*up += (unsigned long long)n;
		}
	}
}

static char *read_password_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char line[1024];
	char *pw = NULL;
	if (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		pw = xstrdup(line);
	}
	fclose(f);
	return pw;
}

int ctl_atrn(struct ctl *ctl, int argc, char **argv)
{
	struct client_opts opt = { 0, 0, ATRN_IDLE_DEFAULT, ctl->cfg.hostname };
	const char *user = NULL, *pwfile = NULL;
	int i = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		int r = client_option("atrn", argc, argv, &i, &opt);
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "--user") && i + 1 < argc)
			user = argv[++i];
		else if (!strcmp(argv[i], "--password-file") && i + 1 < argc)
			pwfile = argv[++i];
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else {
			atrn_usage();
			return EXIT_USAGE;
		}
	}
	int starttls = opt.starttls, verbose = opt.verbose;
	long timeout = opt.timeout;
	const char *helo = opt.helo;
	if (argc - i < 1) {
		atrn_usage();
		return EXIT_USAGE;
	}
	char host[ETRN_HOST_MAX], why[128];
	unsigned port;
	int port_given;
	if (etrn_server_parse(argv[i], host, sizeof(host), &port, &port_given, why, sizeof(why)) < 0) {
		fprintf(stderr, "tsubamectl: atrn: '%s' is not HOST[:PORT] (%s)\n", argv[i], why);
		return EXIT_USAGE;
	}
	if (!port_given)
		port = 366;   /* RFC 2645 4: the odmr port */
	/* the domains, joined and checked by the parser the provider uses */
	char list[2048] = "";
	for (int k = i + 1; k < argc; k++) {
		size_t len = strlen(list);
		snprintf(list + len, sizeof(list) - len, "%s%s", len ? "," : "", argv[k]);
	}
	struct atrn_domains *doms = xcalloc(1, sizeof(*doms));
	int bad = atrn_parse_domains(list, doms) != 0;
	free(doms);
	if (bad || strlen(list) > 1000) {
		fprintf(stderr, "tsubamectl: atrn: '%s': not a list of domain names\n", list);
		return EXIT_USAGE;
	}
	char *password = NULL;
	if (user) {
		if (!pwfile || !(password = read_password_file(pwfile))) {
			fprintf(stderr, "tsubamectl: atrn: --user needs a readable --password-file\n");
			return EXIT_USAGE;
		}
	} else if (ctl->cfg.smarthost_auth_user && ctl->cfg.smarthost_auth_user[0]) {
		user = ctl->cfg.smarthost_auth_user;
		password = xstrdup(ctl->cfg.smarthost_auth_password ? ctl->cfg.smarthost_auth_password : "");
	} else {
		fprintf(stderr, "tsubamectl: atrn: no account: give --user and --password-file, or set "
				"smarthost_auth_user and smarthost_auth_password\n");
		return EXIT_USAGE;
	}

	struct conn c;
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.timeout_ms = 30000;
	c.verbose = verbose;
	struct etrn_reply r;
	char cmd[4096];
	int rc = EXIT_UNREACHABLE, lfd = -1;
	if (open_conn(ctl, &c, host, port, 1) < 0)
		goto done;
	if (read_reply(&c, &r, "greeting") < 0)
		goto done;
	if (r.code != 220) {
		fprintf(stderr, "tsubamectl: atrn: %s: greeting %d %s\n", c.peer, r.code, r.text);
		goto done;
	}
	snprintf(cmd, sizeof(cmd), "EHLO %s", helo);
	if (command(&c, cmd, &r, "EHLO reply") < 0)
		goto done;
	if (r.code != 250) {
		fprintf(stderr, "tsubamectl: atrn: %s: EHLO refused: %d %s\n", c.peer, r.code, r.text);
		rc = EXIT_REFUSED;
		quit(&c);
		goto done;
	}
	if (starttls) {
		if (!(r.ehlo & ETRN_EHLO_STARTTLS) || command(&c, "STARTTLS", &r, "STARTTLS reply") < 0 || r.code != 220 ||
		    start_tls(&c, host) < 0) {
			fprintf(stderr, "tsubamectl: atrn: %s: STARTTLS failed\n", c.peer);
			goto done;
		}
		snprintf(cmd, sizeof(cmd), "EHLO %s", helo);
		if (command(&c, cmd, &r, "EHLO reply") < 0 || r.code != 250)
			goto done;
	}
	/* AUTH PLAIN (RFC 4616): authzid empty, authcid, password */
	{
		size_t ul = strlen(user), pl = strlen(password);
		if (ul + pl > 900) {
			fprintf(stderr, "tsubamectl: atrn: account or password too long\n");
			rc = EXIT_USAGE;
			goto done;
		}
		unsigned char raw[1024];
		raw[0] = '\0';
		memcpy(raw + 1, user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, password, pl);
		char b64[1400];
		EVP_EncodeBlock((unsigned char *)b64, raw, (int)(2 + ul + pl));
		snprintf(cmd, sizeof(cmd), "AUTH PLAIN %s", b64);
		OPENSSL_cleanse(raw, sizeof(raw));
	}
	int authok = command(&c, cmd, &r, "AUTH reply");
	OPENSSL_cleanse(cmd, sizeof(cmd));
	if (authok < 0)
		goto done;
	if (r.code != 235) {
		printf("AUTH: %d %s\n", r.code, r.text);
		rc = EXIT_REFUSED;
		quit(&c);
		goto done;
	}
	snprintf(cmd, sizeof(cmd), "ATRN%s%s", list[0] ? " " : "", list);
	if (command(&c, cmd, &r, "ATRN reply") < 0)
		goto done;
	if (r.code == 453) {
		printf("no mail waiting (%d %s)\n", r.code, r.text);
		quit(&c);
		rc = 0;
		goto done;
	}
	if (r.code != 250) {
		printf("ATRN: %d %s\n", r.code, r.text);
		rc = EXIT_REFUSED;
		quit(&c);
		goto done;
	}
	/* RFC 2645 4.3: we are the SMTP server now: our own smtpd plays that part. */
	lfd = connect_own_smtpd(&ctl->cfg, c.timeout_ms);
	if (lfd < 0) {
		fprintf(stderr, "tsubamectl: atrn: cannot connect to our own smtpd (listen = %s)\n",
		    ctl->cfg.nlisten ? ctl->cfg.listen[0].text : "-");
		goto done;
	}
	unsigned long long up = 0, down = 0;
	long long t0 = ms_now();
	int s = splice_loop(&c, lfd, (int)timeout * 1000, &up, &down);
	printf("ATRN: %d %s; received over the reversed connection: %llu bytes in, %llu bytes out, %.1f s%s\n", r.code,
	    r.text, down, up, (double)(ms_now() - t0) / 1000.0, s < 0 ? " (timed out)" : "");
	rc = s < 0 ? EXIT_UNREACHABLE : 0;
done:
	fflush(stdout);
	if (lfd >= 0)
		close(lfd);
	if (password) {
		OPENSSL_cleanse(password, strlen(password));
		free(password);
	}
	conn_close(&c);
	return rc;
}
