/*
 * dnsbl: DNS block-list checks for a client address (R5, the manual's ORDB
 * setting), the exempt-address matcher, and the RFC 5782 query names.
 *
 * Owns the state of one check: every configured zone is asked in parallel
 * through dns.c; the answer is decided in configuration order, so the first
 * zone that lists the client wins, but only once every zone before it has said
 * no.  A lookup that fails or times out counts as "not listed": a broken list
 * must never stop mail (the manual's ORDB setting is advisory).
 *
 * Trust: DNS answers are untrusted.  Only A answers inside 127.0.0.0/8 count
 * (RFC 5782 2.3), and the TXT reason is reduced to printable ASCII before it
 * goes anywhere near an SMTP reply, so a list cannot inject CR LF or a second
 * reply line.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/dnsbl.h"
#include "util/log.h"
#include "util/xalloc.h"

/* RFC 1035 2.3.4: a name is at most 255 octets on the wire, 253 characters written out. */
#define NAME_MAX_TEXT 253

/* ---- addresses ------------------------------------------------------------------ */

/* Parse ip into 4 (family 4) or 16 (family 6) bytes; an IPv4-mapped IPv6 address is IPv4. */
static int parse_ip(const char *ip, unsigned char out[16], int *family)
{
	unsigned char v6[16];
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (inet_pton(AF_INET, ip, out) == 1) {
		*family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, v6) != 1)
		return -1;
	if (memcmp(v6, mapped, sizeof(mapped)) == 0) {
		memcpy(out, v6 + 12, 4);
		*family = 4;
	} else {
		memcpy(out, v6, 16);
		*family = 6;
	}
	return 0;
}

int dnsbl_query_name(const char *ip, const char *zone, char *out, size_t outsz)
{
	unsigned char a[16];
	char rev[80];
	int family, n;
	size_t zlen;

	if (ip == NULL || zone == NULL || out == NULL || outsz == 0 || parse_ip(ip, a, &family) != 0)
		return -1;
	zlen = strlen(zone);
	if (zlen > 0 && zone[zlen - 1] == '.')
		zlen--; /* "bl.example." and "bl.example" are the same zone */
	if (zlen == 0 || zone[0] == '.')
		return -1;
	if (family == 4) {
		/* RFC 5782 2.1: a.b.c.d is looked up as d.c.b.a.zone */
		n = snprintf(rev, sizeof(rev), "%u.%u.%u.%u", a[3], a[2], a[1], a[0]);
	} else {
		/* RFC 5782 2.4: 32 nibbles, least significant first, dot-separated */
		static const char hex[] = "0123456789abcdef";
		char *p = rev;
		for (int i = 15; i >= 0; i--) {
			*p++ = hex[a[i] & 0xf];
			*p++ = '.';
			*p++ = hex[a[i] >> 4];
			*p++ = i > 0 ? '.' : '\0';
		}
		n = (int)(p - rev - 1);
	}
	if (n < 0 || (size_t)n + 1 + zlen > NAME_MAX_TEXT || (size_t)n + 1 + zlen + 1 > outsz)
		return -1;
	snprintf(out, outsz, "%s.%.*s", rev, (int)zlen, zone);
	return 0;
}

/* ---- exempt patterns -------------------------------------------------------------- */

static int prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/* "10.*.*.*", "192.168.1.*": four parts, each '*' or a decimal octet. */
static int wildcard_match(const char *pat, const unsigned char ip4[4])
{
	const char *p = pat;

	for (int i = 0; i < 4; i++) {
		if (*p == '*') {
			p++;
		} else {
			unsigned v = 0;
			int digits = 0;
			while (*p >= '0' && *p <= '9' && digits < 3) {
				v = v * 10 + (unsigned)(*p++ - '0');
				digits++;
			}
			if (digits == 0 || v > 255 || v != ip4[i])
				return 0;
		}
		if (i < 3 && *p++ != '.')
			return 0;
	}
	return *p == '\0';
}

/* "a.b.c.d/n" or "x:y::/n"; an IPv4-mapped IPv6 prefix of /96 or longer is an IPv4 prefix. */
static int cidr_match(const char *pat, const unsigned char ip[16], int family)
{
	char addr[64];
	const char *slash = strchr(pat, '/');
	unsigned char net[16];
	int nfam, bits = 0, digits = 0;
	size_t alen = (size_t)(slash - pat);

	if (alen == 0 || alen >= sizeof(addr))
		return 0;
	memcpy(addr, pat, alen);
	addr[alen] = '\0';
	for (const char *p = slash + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || ++digits > 3)
			return 0;
		bits = bits * 10 + (*p - '0');
	}
	if (digits == 0 || parse_ip(addr, net, &nfam) != 0)
		return 0;
	if (nfam == 4 && strchr(addr, ':') != NULL) {
		/* ::ffff:a.b.c.d/n came back as IPv4: its prefix counts from bit 96 */
		if (bits < 96)
			return 0;
		bits -= 96;
	}
	if (bits > (nfam == 4 ? 32 : 128) || nfam != family)
		return 0;
	return prefix_match(ip, net, bits);
}

static int pattern_match(const char *pat, const unsigned char ip[16], int family)
{
	unsigned char a[16];
	int afam;

	if (strchr(pat, '/') != NULL)
		return cidr_match(pat, ip, family);
	if (strchr(pat, '*') != NULL)
		return family == 4 && wildcard_match(pat, ip);
	if (parse_ip(pat, a, &afam) != 0 || afam != family)
		return 0;
	return memcmp(a, ip, family == 4 ? 4 : 16) == 0;
}

int dnsbl_exempt(char *const *patterns, size_t n, const char *ip)
{
	unsigned char a[16];
	int family;

	if (ip == NULL || parse_ip(ip, a, &family) != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (patterns[i] != NULL && pattern_match(patterns[i], a, family))
			return 1;
	}
	return 0;
}

/* ---- the check ---------------------------------------------------------------------- */

enum zone_state { Z_WAIT_A = 0, Z_NOT_LISTED, Z_WAIT_TXT, Z_LISTED };

struct dnsbl_zone {
	struct dnsbl_check *c;
	enum zone_state st;
	char zone[256];
	char qname[NAME_MAX_TEXT + 1];
	char reason[512];
};

struct dnsbl_check {
	struct dns *d;
	dnsbl_cb cb;
	void *arg;
	size_t inflight;   /* queries whose callbacks are still to come */
	int done;          /* cb has been called */
	int cancelled;     /* the owner no longer wants cb */
	size_t n;
	struct dnsbl_zone z[];
};

static void check_release(struct dnsbl_check *c)
{
	if (c->inflight == 0 && (c->done || c->cancelled))
		free(c);
}

/* Call cb when the first zone (in configuration order) that is not a "no" is a "yes", or all are "no". */
static void check_decide(struct dnsbl_check *c)
{
	struct dnsbl_result r;

	if (c->done || c->cancelled)
		return;
	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < c->n; i++) {
		struct dnsbl_zone *z = &c->z[i];
		if (z->st == Z_WAIT_A || z->st == Z_WAIT_TXT)
			return;
		if (z->st == Z_LISTED) {
			r.listed = 1;
			snprintf(r.zone, sizeof(r.zone), "%s", z->zone);
			snprintf(r.reason, sizeof(r.reason), "%s", z->reason);
			break;
		}
	}
	c->done = 1;
	c->cb(c->arg, &r);
}

/* The TXT reason goes into a 554 reply: printable ASCII only, nothing that could end the line. */
static void set_reason(struct dnsbl_zone *z, const char *txt)
{
	size_t j = 0;

	for (size_t i = 0; txt != NULL && txt[i] != '\0' && j + 1 < sizeof(z->reason); i++) {
		unsigned char ch = (unsigned char)txt[i];
		z->reason[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	z->reason[j] = '\0';
	while (j > 0 && z->reason[j - 1] == ' ')
		z->reason[--j] = '\0';
	if (j == 0)
		snprintf(z->reason, sizeof(z->reason), "listed by %s", z->zone);
}

static void on_txt(void *arg, const struct dns_answer *a)
{
	struct dnsbl_zone *z = arg;
	struct dnsbl_check *c = z->c;

	c->inflight--;
	set_reason(z, a->status == DNS_OK && a->ntxt > 0 ? a->txt[0] : NULL);
	z->st = Z_LISTED;
	check_decide(c);
	check_release(c);
}

/*
 * RFC 5782 2.3: a listing is an A record in 127.0.0.0/8.  Other answers (a
 * wildcarded or hijacked zone) are ignored, and so is 127.255.255.0/24, which
 * Spamhaus uses for "query refused / error", not for a listing: otherwise a list
 * that refuses our resolver would reject every client.
 */
static int is_listing(const char *addr)
{
	unsigned char a[4];

	if (inet_pton(AF_INET, addr, a) != 1 || a[0] != 127)
		return 0;
	return !(a[1] == 255 && a[2] == 255);
}

static void on_a(void *arg, const struct dns_answer *a)
{
	struct dnsbl_zone *z = arg;
	struct dnsbl_check *c = z->c;
	int listed = 0;

	c->inflight--;
	if (a->status == DNS_OK) {
		for (size_t i = 0; i < a->naddrs && !listed; i++)
			listed = is_listing(a->addrs[i]);
	} else if (a->status == DNS_TEMPFAIL) {
		log_info("event=dnsbl_tempfail zone=%s", lq(z->zone));
	}
	if (listed && !c->done && !c->cancelled) {
		z->st = Z_WAIT_TXT;
		c->inflight++;
		dns_query(c->d, z->qname, ns_t_txt, on_txt, z);
	} else {
		/* Also when listed but the decision is already made: the reason would go nowhere. */
		z->st = listed ? Z_LISTED : Z_NOT_LISTED;
		if (listed)
			snprintf(z->reason, sizeof(z->reason), "listed by %s", z->zone);
		check_decide(c);
	}
	check_release(c);
}

struct dnsbl_check *dnsbl_check(struct dns *d, char *const *zones, size_t nzones, const char *ip, dnsbl_cb cb,
    void *arg)
{
	struct dnsbl_check *c;

	if (nzones > DNSBL_MAX_ZONES) {
		log_warnx("event=dnsbl_config detail=\"only the first %d lists are used\"", DNSBL_MAX_ZONES);
		nzones = DNSBL_MAX_ZONES;
	}
	c = xcalloc(1, sizeof(*c) + nzones * sizeof(c->z[0]));
	c->d = d;
	c->cb = cb;
	c->arg = arg;
	c->n = nzones;
	for (size_t i = 0; i < nzones; i++) {
		struct dnsbl_zone *z = &c->z[i];
		z->c = c;
		if (zones[i] == NULL || strlen(zones[i]) >= sizeof(z->zone) ||
		    dnsbl_query_name(ip, zones[i], z->qname, sizeof(z->qname)) != 0) {
			/* An address that cannot be listed, or a zone name that cannot be asked. */
			z->st = Z_NOT_LISTED;
			continue;
		}
		snprintf(z->zone, sizeof(z->zone), "%s", zones[i]);
		z->st = Z_WAIT_A;
		c->inflight++;
	}
	/* Only now start the queries: dns.c delivers answers from the loop, never inside dns_query(). */
	for (size_t i = 0; i < nzones; i++) {
		if (c->z[i].st == Z_WAIT_A)
			dns_query(d, c->z[i].qname, ns_t_a, on_a, &c->z[i]);
	}
	if (c->inflight == 0) {
		check_decide(c);
		check_release(c);
		return NULL;
	}
	return c;
}

void dnsbl_cancel(struct dnsbl_check *c)
{
	if (c == NULL || c->done)
		return; /* from inside cb: nothing left to stop */
	/* The queries may still be in flight; their callbacks free c when the last one returns. */
	c->cancelled = 1;
	check_release(c);
}
