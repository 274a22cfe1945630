/*
 * ctl_account: `tsubamectl account add|del|passwd|list|show|import|export` (L2, O2).
 * It trusts the administrator's arguments no more than a table line: names,
 * flags, limits and free text are checked before anything is written.
 * Output: list prints one TAB-separated line per account, show "key: value"
 * lines; a generated password is printed once as "password: <it>".
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "ctl/ctl_tables.h"
#include "local/accounts.h"
#include "local/domains.h"
#include "local/maildir.h"
#include "util/xalloc.h"

#define GEN_PASSWORD_LEN 16

static const char USAGE_ADD[] =
	"account add USER@DOMAIN [-p PASSWORD] [-n \"Full Name\"] [-H HOME] [-a 0|1] [-A 0|1] [-l LIMIT_BYTES]";
static const char USAGE_DEL[] = "account del USER@DOMAIN";
static const char USAGE_PASSWD[] = "account passwd USER@DOMAIN [-p PASSWORD]";
static const char USAGE_LIST[] = "account list [DOMAIN]";
static const char USAGE_SHOW[] = "account show USER@DOMAIN";
static const char USAGE_IMPORT[] = "account import FILE|-";
static const char USAGE_EXPORT[] = "account export [FILE]";
static const char USAGE_ALL[] = "account add|del|passwd|list|show|import|export ...";

/* Free text for a TAB-separated line: no control characters at all. */
static int text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* 16 letters and digits from getrandom(); rejection sampling keeps every character equally likely. */
static int generate_password(char *out, size_t outsz)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	const unsigned limit = 256 - 256 % (sizeof(alphabet) - 1);
	size_t n = 0;

	while (n < GEN_PASSWORD_LEN && n + 1 < outsz) {
		unsigned char rnd[64];
		ssize_t got = getrandom(rnd, sizeof(rnd), 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (ssize_t i = 0; i < got && n < GEN_PASSWORD_LEN && n + 1 < outsz; i++)
			if (rnd[i] < limit)
				out[n++] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	}
	out[n] = '\0';
	return 0;
}

/* The password from -p, or a generated one (printed); NULL after printing why. */
static char *new_password_hash(const char *given, int *generated)
{
	char pw[GEN_PASSWORD_LEN + 1];
	const char *plain = given;

	*generated = 0;
	if (given != NULL) {
		if (given[0] == '\0' || !text_ok(given)) {
			ctl_fail("the password must be non-empty, without control characters");
			return NULL;
		}
	} else {
		if (generate_password(pw, sizeof(pw)) < 0) {
			ctl_fail("getrandom: %s", strerror(errno));
			return NULL;
		}
		plain = pw;
		*generated = 1;
	}
	char *hash = password_hash(plain);
	if (hash == NULL)
		ctl_fail("cannot hash the password (crypt: %s)", strerror(errno));
	else if (*generated)
		printf("password: %s\n", pw);
	explicit_bzero(pw, sizeof(pw));
	return hash;
}

static int parse_flag(const char *s, int *out)
{
	if ((s[0] != '0' && s[0] != '1') || s[1] != '\0')
		return -1;
	*out = s[0] - '0';
	return 0;
}

static int account_add(struct ctl *c, int argc, char **argv)
{
	const char *password = NULL, *full_name = "", *home = "";
	struct account a = { .smtp_auth = 1, .apop = 0 };
	char local[256], domain[256];
	int opt;

	ctl_reset_getopt();
	while ((opt = getopt(argc, argv, "p:n:H:a:A:l:")) != -1) {
		switch (opt) {
		case 'p': password = optarg; break;
		case 'n': full_name = optarg; break;
		case 'H': home = optarg; break;
		case 'a':
			if (parse_flag(optarg, &a.smtp_auth) < 0)
				return ctl_usage(USAGE_ADD);
			break;
		case 'A':
			if (parse_flag(optarg, &a.apop) < 0)
				return ctl_usage(USAGE_ADD);
			break;
		case 'l':
			if (domain_parse_number(optarg, 1, &a.mailbox_limit) < 0)
				return ctl_usage(USAGE_ADD);
			break;
		default:
			return ctl_usage(USAGE_ADD);
		}
	}
	if (argc - optind != 1)
		return ctl_usage(USAGE_ADD);
	const char *addr = argv[optind];
	if (ctl_split_address(addr, local, sizeof(local), domain, sizeof(domain)) < 0)
		return ctl_fail("\"%s\" is not USER@DOMAIN", addr);
	if (!account_name_valid(local))
		return ctl_fail("invalid account name \"%s\" (letters, digits and !#$%%&'*+-=?^_`{|}~ with single dots)",
		    local);
	if (!text_ok(full_name))
		return ctl_fail("the full name must not contain control characters");
	if (!text_ok(home) || (home[0] != '\0' && home[0] != '/'))
		return ctl_fail("the home folder must be an absolute path without control characters");

	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0)
		return 1;
	int rc = 1;
	const struct domain *d = domains_find(&t.domains, domain);
	if (d == NULL) {
		ctl_fail("no such domain: %s (add it with: tsubamectl domain add %s)", domain, domain);
		goto out;
	}
	if (accounts_find(&t.accounts, local, d->name) != NULL) {
		ctl_fail("account %s@%s exists", local, d->name);
		goto out;
	}
	size_t have = accounts_count_in_domain(&t.accounts, d->name);
	if (d->max_accounts > 0 && have >= (size_t)d->max_accounts) {
		/* L1 "max users" (seed 004, 最大的用戶個數): the domain's limit, not a global one. */
		ctl_fail("domain %s is full (max_accounts=%ld, %zu account%s): raise it with tsubamectl domain set %s "
			 "--max-accounts N", d->name, d->max_accounts, have, have == 1 ? "" : "s", d->name);
		goto out;
	}
	int generated;
	char *hash = new_password_hash(password, &generated);
	if (hash == NULL)
		goto out;
	a.name = local;
	a.password = hash;
	a.full_name = (char *)full_name;
	a.domain = d->name;
	a.home = (char *)home;
	accounts_add(&t.accounts, &a);
	free(hash);
	if (ctl_save_accounts(&t) < 0)
		goto out;
	printf("added %s@%s\n", local, d->name);
	rc = 0;
out:
	return ctl_tables_done(c, &t, rc);
}

static int account_del(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage(USAGE_DEL);
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0)
		return 1;
	int rc = 1;
	struct account *a = ctl_find_account(&t, argv[1]);
	if (a == NULL)
		goto out;
	char *name = xasprintf("%s@%s", a->name, a->domain);
	accounts_remove(&t.accounts, a->name, a->domain);
	if (ctl_save_accounts(&t) == 0) {
		/* The mailbox stays: removing mail is a separate, deliberate act. */
		printf("deleted %s (its mailbox was left in place)\n", name);
		rc = 0;
	}
	free(name);
out:
	return ctl_tables_done(c, &t, rc);
}

static int account_passwd(struct ctl *c, int argc, char **argv)
{
	const char *password = NULL;
	int opt;

	ctl_reset_getopt();
	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p')
			return ctl_usage(USAGE_PASSWD);
		password = optarg;
	}
	if (argc - optind != 1)
		return ctl_usage(USAGE_PASSWD);
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0)
		return 1;
	int rc = 1, generated;
	struct account *a = ctl_find_account(&t, argv[optind]);
	if (a == NULL)
		goto out;
	char *hash = new_password_hash(password, &generated);
	if (hash == NULL)
		goto out;
	explicit_bzero(a->password, strlen(a->password));
	free(a->password);
	a->password = hash;
	if (ctl_save_accounts(&t) < 0)
		goto out;
	printf("password changed for %s@%s\n", a->name, a->domain);
	rc = 0;
out:
	return ctl_tables_done(c, &t, rc);
}

static int account_list(struct ctl *c, int argc, char **argv)
{
	if (argc > 2)
		return ctl_usage(USAGE_LIST);
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_READ) < 0)
		return 1;
	const char *only = NULL;
	int rc = 0;
	if (argc == 2) {
		const struct domain *d = domains_find(&t.domains, argv[1]);
		if (d == NULL) {
			rc = ctl_fail("no such domain: %s", argv[1]);
			goto out;
		}
		only = d->name;
	}
	for (size_t i = 0; i < t.accounts.n; i++) {
		const struct account *a = &t.accounts.v[i];
		if (only && strcmp(a->domain, only) != 0)
			continue;
		printf("%s@%s\t%s\tsmtp_auth=%d\tapop=%d\tlimit=%ld\n", a->name, a->domain, a->full_name, a->smtp_auth,
		    a->apop, a->mailbox_limit);
	}
out:
	ctl_tables_close(&t);
	return rc;
}

static int account_show(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage(USAGE_SHOW);
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_READ) < 0)
		return 1;
	int rc = 1;
	const struct account *a = ctl_find_account(&t, argv[1]);
	if (a == NULL)
		goto out;
	const struct domain *d = domains_find(&t.domains, a->domain);
	long limit = a->mailbox_limit > 0 ? a->mailbox_limit
	    : d && d->mailbox_limit > 0 ? d->mailbox_limit : c->cfg.mailbox_size_limit;
	const char *from = a->mailbox_limit > 0 ? "account" : d && d->mailbox_limit > 0 ? "domain" : "global";
	char path[4096];
	printf("account: %s@%s\n", a->name, a->domain);
	printf("full_name: %s\n", a->full_name);
	printf("home: %s\n", a->home);
	printf("smtp_auth: %d\n", a->smtp_auth);
	printf("apop: %d\n", a->apop);
	printf("mailbox_limit: %ld\n", a->mailbox_limit);
	printf("effective_limit: %ld (%s%s)\n", limit, from, limit == 0 ? ", unlimited" : "");
	if (d == NULL)
		printf("warning: domain %s is not in the domains table\n", a->domain);
	if (mailbox_path_expand(c->cfg.mailbox_path, a, path, sizeof(path)) < 0) {
		printf("mailbox: (invalid: mailbox_path \"%s\" gives an unsafe or relative path)\n", c->cfg.mailbox_path);
	} else {
		long long bytes, msgs;
		printf("mailbox: %s\n", path);
		if (maildir_usage(path, &bytes, &msgs) < 0)
			printf("usage: unknown (%s)\n", strerror(errno));
		else
			printf("usage: %lld bytes in %lld messages\n", bytes, msgs);
	}
	rc = 0;
out:
	ctl_tables_close(&t);
	return rc;
}

static int account_import(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage(USAGE_IMPORT);
	const char *file = argv[1];
	FILE *fp = strcmp(file, "-") == 0 ? stdin : fopen(file, "re");
	if (fp == NULL)
		return ctl_fail("open %s: %s", file, strerror(errno));
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0) {
		if (fp != stdin)
			fclose(fp);
		return 1;
	}
	struct buf errors;
	size_t imported = 0;
	buf_init(&errors, 1024 * 1024);
	int nerr = accounts_import_counted(&t.accounts, &t.domains, fp, fp == stdin ? "stdin" : file, &errors,
	    &imported);
	if (fp != stdin)
		fclose(fp);
	fputs(buf_cstr(&errors), stderr);
	if (errors.len == errors.max)
		fputs("tsubamectl: (more errors not shown)\n", stderr);
	buf_free(&errors);
	/* Lines without errors are kept, as the manual's import does; the errors make the exit status. */
	int rc = nerr ? 1 : 0;
	if (imported > 0 && ctl_save_accounts(&t) < 0) {
		rc = 1;
		imported = 0;
	}
	printf("imported %zu account%s, %d error%s\n", imported, imported == 1 ? "" : "s", nerr, nerr == 1 ? "" : "s");
	ctl_tables_close(&t);
	if (imported > 0)
		ctl_reload(c);
	return rc;
}

static int account_export(struct ctl *c, int argc, char **argv)
{
	if (argc > 2)
		return ctl_usage(USAGE_EXPORT);
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_READ) < 0)
		return 1;
	int rc = 0;
	FILE *fp = stdout;
	if (argc == 2 && strcmp(argv[1], "-") != 0) {
		/* The export holds password hashes: private to its owner. */
		int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		fp = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (fp == NULL) {
			rc = ctl_fail("open %s: %s", argv[1], strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
	}
	accounts_export(&t.accounts, fp);
	if (fflush(fp) != 0 || ferror(fp))
		rc = ctl_fail("write %s: %s", fp == stdout ? "stdout" : argv[1], strerror(errno));
	if (fp != stdout && fclose(fp) != 0 && rc == 0)
		rc = ctl_fail("write %s: %s", argv[1], strerror(errno));
out:
	ctl_tables_close(&t);
	return rc;
}

int ctl_account(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
		{ "add", account_add }, { "del", account_del }, { "passwd", account_passwd },
		{ "list", account_list }, { "show", account_show }, { "import", account_import },
		{ "export", account_export },
	};

	return ctl_dispatch(c, "account", cmds, sizeof(cmds) / sizeof(cmds[0]), USAGE_ALL, argc, argv);
}
