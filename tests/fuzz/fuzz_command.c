/*
 * fuzz_command: libFuzzer target for the command-line parsers (smtp/command.c,
 * smtp/address.c).  The input is one command line, cut at the first NUL as the
 * session's line reader would hand it over.  The first byte also chooses the
 * ADDR_* flags so every grammar branch (UTF-8, null, Postmaster, no brackets) is
 * reached.  Every successful parse is checked for the invariants callers rely on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/address.h"
#include "smtp/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_addr(const struct mailaddr *a)
{
	char out[ADDR_TEXT_MAX];
	struct mailaddr b;
	const char *why;

	if (strlen(a->local) > ADDR_LOCAL_MAX || strlen(a->domain) > ADDR_DOMAIN_MAX)
		abort();
	addr_format(a, out, sizeof(out));
	if (strlen(out) >= sizeof(out))
		abort();
	/* The formatted form must parse back to the same address. */
	if (!a->is_null && a->domain[0] != '\0') {
		if (addr_parse(out, ADDR_ALLOW_UTF8, &b, &why) != 0)
			abort();
		if (strcmp(a->local, b.local) != 0 || strcmp(a->domain, b.domain) != 0)
			abort();
	}
}

static void check_err(const struct smtp_err *e)
{
	if (e->code < 500 || e->code > 559 || e->enh == NULL || e->text == NULL ||
	    e->enh[0] != '5' || strlen(e->text) == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line;
	unsigned flags = 0;
	struct smtp_command cmd;
	struct smtp_err err;

	if (size > 0) {
		flags = data[0] & (ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8 | ADDR_ALLOW_POSTMASTER |
		    ADDR_ALLOW_NO_BRACKETS);
		data++;
		size--;
	}
	line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0'; /* stops at the first NUL, like a C string */

	command_split(line, &cmd);
	(void)verb_name(cmd.verb);
	if (cmd.args < line || cmd.args > line + strlen(line))
		abort();

	switch (cmd.verb) {
	case VERB_MAIL: {
		struct mailaddr a;
		struct mail_params mp;
		if (cmd_parse_mail(cmd.args, flags, &a, &mp, &err) == 0) {
			if (a.utf8 && !mp.smtputf8 && !(flags & ADDR_ALLOW_UTF8))
				abort();
			check_addr(&a);
		} else
			check_err(&err);
		break;
	}
	case VERB_RCPT: {
		struct mailaddr a;
		struct rcpt_params rp;
		if (cmd_parse_rcpt(cmd.args, flags, &a, &rp, &err) == 0) {
			if (a.is_null || (a.utf8 && !(flags & ADDR_ALLOW_UTF8)))
				abort();
			/* decoded DSN values are bounded header text */
			if (strlen(rp.orcpt) > DSN_ORCPT_MAX || (rp.notify & DSN_NOTIFY_NEVER && rp.notify != DSN_NOTIFY_NEVER))
				abort();
			for (const char *c = rp.orcpt; *c; c++)
				if ((unsigned char)*c < 32 || *c == 127)
					abort();
			check_addr(&a);
		} else
			check_err(&err);
		break;
	}
	case VERB_BDAT: {
		uint64_t sz;
		int last;
		if (cmd_parse_bdat(cmd.args, &sz, &last, &err) != 0)
			check_err(&err);
		break;
	}
	case VERB_HELO:
	case VERB_EHLO: {
		char name[256];
		if (cmd_parse_helo(cmd.args, name, sizeof(name), &err) == 0) {
			if (strlen(name) == 0 || strchr(name, ' ') != NULL)
				abort();
		} else
			check_err(&err);
		break;
	}
	default: {
		/* Anything else: exercise the address parsers on the raw arguments. */
		struct mailaddr a;
		size_t used;
		const char *why;
		if (addr_parse_path(cmd.args, strlen(cmd.args), flags, &a, &used, &why) == 0) {
			if (used > strlen(cmd.args) || used > ADDR_PATH_MAX)
				abort();
			check_addr(&a);
		}
		if (addr_parse(cmd.args, flags, &a, &why) == 0)
			check_addr(&a);
		(void)addr_domain_valid(cmd.args, flags);
		break;
	}
	}
	free(line);
	return 0;
}
