/*
 * address: RFC 5321 4.1.2 paths and mailboxes (with RFC 6531 SMTPUTF8).
 *
 * Trusts nothing: input is raw client text.  Produces the internal (unquoted) form:
 * local part without surrounding quotes or quoted-pair backslashes, domain as
 * written (callers compare it case-insensitively).  Source routes ("@a,@b:") are
 * accepted and dropped (RFC 5321 4.1.1.3 and appendix C).
 */
#ifndef TSUBAME_ADDRESS_H
#define TSUBAME_ADDRESS_H

#include <stddef.h>

#define ADDR_LOCAL_MAX 64    /* RFC 5321 4.5.3.1.1 (octets) */
#define ADDR_DOMAIN_MAX 255  /* RFC 5321 4.5.3.1.2 */
#define ADDR_PATH_MAX 256    /* RFC 5321 4.5.3.1.3, including < > */
#define ADDR_TEXT_MAX 512    /* room for an address re-quoted for output */

enum addr_flags {
	ADDR_ALLOW_NULL = 1,       /* "<>" is valid (MAIL FROM) */
	ADDR_ALLOW_UTF8 = 2,       /* SMTPUTF8 was given: UTF-8 in local part and domain */
	ADDR_ALLOW_POSTMASTER = 4, /* "<Postmaster>" without a domain (RCPT TO, RFC 5321 4.5.1) */
	ADDR_ALLOW_NO_BRACKETS = 8 /* tolerate a path without < > (as many MTAs do) */
};

struct mailaddr {
	char local[ADDR_LOCAL_MAX * 2 + 1]; /* unquoted form; empty for <> */
	char domain[ADDR_DOMAIN_MAX + 1];   /* empty for <> and for bare <Postmaster> */
	int is_null;                        /* "<>" */
	int domain_is_literal;              /* "[192.0.2.1]" or "[IPv6:...]" */
	int utf8;                           /* contains non-ASCII */
};

/*
 * Parse a path starting at s (len bytes, need not be NUL-terminated).  On success
 * returns 0 and sets *consumed to the bytes used (through '>').  On failure returns
 * -1 and sets *why to a short English reason for the reply text.
 */
int addr_parse_path(const char *s, size_t len, unsigned flags, struct mailaddr *out,
    size_t *consumed, const char **why);

/* Parse "local@domain" without angle brackets (table files, command line). */
int addr_parse(const char *s, unsigned flags, struct mailaddr *out, const char **why);

/* Write local@domain, quoting the local part when RFC 5321 requires it; "" for <>. */
void addr_format(const struct mailaddr *a, char *out, size_t outsz);

/* Domain syntax check (dot-atom of LDH labels, or UTF-8 labels with ADDR_ALLOW_UTF8, or a literal). */
int addr_domain_valid(const char *domain, unsigned flags);

/* Case-insensitive ASCII comparison of domains; 1 when equal. */
int addr_domain_equal(const char *a, const char *b);

/*
 * 1 when s[0..len) is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or
 * code points above U+10FFFF) without control characters (C0, DEL, C1).
 */
int addr_utf8_valid(const char *s, size_t len);

#endif
