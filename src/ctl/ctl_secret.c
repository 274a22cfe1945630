/*
 * ctl_secret: `tsubamectl secret set USER@DOMAIN [-p SECRET|-p -]`,
 * `secret del USER@DOMAIN` and `secret list` (R3: CRAM-MD5 only for accounts
 * that opted in).
 *
 * A secret is plaintext-equivalent: whoever reads it can authenticate as the
 * account, so `set` refuses accounts without the APOP flag, `list` prints
 * addresses only, and a generated secret is printed once as "secret: <it>".
 * `-p -` reads the secret from the first line of stdin, keeping it out of ps.
 * Changes happen under the same directory lock as the account commands, so a
 * concurrent `account del` cannot interleave with `secret set`.
 */
#include "ctl/ctl_secret.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/sasl.h"
#include "ctl/ctl_tables.h"
#include "util/xalloc.h"

#define GEN_SECRET_LEN 16
#define SECRET_MAX 1024

static const char USAGE_SET[] = "secret set USER@DOMAIN [-p SECRET|-p -]";
static const char USAGE_DEL[] = "secret del USER@DOMAIN";
static const char USAGE_LIST[] = "secret list";
static const char USAGE_ALL[] = "secret set|del|list ...";

/* 16 letters and digits from RAND_bytes; rejection sampling keeps each character equally likely. */
static int generate_secret(char *out, size_t outsz)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	const unsigned limit = 256 - 256 % (sizeof(alphabet) - 1);
	size_t n = 0;

	while (n < GEN_SECRET_LEN && n + 1 < outsz) {
		unsigned char rnd[64];
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return -1;
		for (size_t i = 0; i < sizeof(rnd) && n < GEN_SECRET_LEN && n + 1 < outsz; i++)
			if (rnd[i] < limit)
				out[n++] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
		OPENSSL_cleanse(rnd, sizeof(rnd));
	}
	out[n] = '\0';
	return 0;
}

/* The secret from "-p -": one line of stdin without its line end; -1 when empty or too long. */
static int read_secret(char *out, size_t outsz)
{
	if (fgets(out, (int)outsz, stdin) == NULL)
		return -1;
	size_t n = strlen(out);
	if (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	else if (!feof(stdin))
		return -1; /* longer than the buffer */
	if (n > 0 && out[n - 1] == '\r')
		out[--n] = '\0';
	return n > 0 ? 0 : -1;
}

/* Load the secrets table, printing its errors on stderr; returns their count. */
static int load_table(struct secret_table *st, const char *path)
{
	struct buf errors;

	buf_init(&errors, 64 * 1024);
	int nerr = secrets_load(st, path, &errors);
	fputs(buf_cstr(&errors), stderr);
	buf_free(&errors);
	return nerr;
}

/* Load the secrets table, printing its errors; -1 when a rewrite would drop bad lines. */
static int check_table(const char *path)
{
	struct secret_table st;
	int nerr = load_table(&st, path);

	secrets_free(&st);
	if (nerr > 0) {
		ctl_fail("%d error%s in %s: fix them before changing anything", nerr, nerr == 1 ? "" : "s", path);
		return -1;
	}
	return 0;
}

static int secret_set(struct ctl *c, int argc, char **argv)
{
	const char *given = NULL;
	char buf[SECRET_MAX + 2];
	int opt;

	ctl_reset_getopt();
	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p')
			return ctl_usage(USAGE_SET);
		given = optarg;
	}
	if (argc - optind != 1)
		return ctl_usage(USAGE_SET);
	const char *addr = argv[optind];

	int rc = 1, generated = 0;
	const char *secret = NULL;
	if (given == NULL) {
		if (generate_secret(buf, sizeof(buf)) < 0)
			return ctl_fail("RAND_bytes failed: no secret generated");
		generated = 1;
	} else if (strcmp(given, "-") == 0) {
		if (read_secret(buf, sizeof(buf)) < 0) {
			OPENSSL_cleanse(buf, sizeof(buf));
			return ctl_fail("no secret on stdin (one non-empty line of at most %d bytes)", SECRET_MAX);
		}
	} else {
		snprintf(buf, sizeof(buf), "%s", given);
		if (strlen(given) > SECRET_MAX)
			buf[0] = '\0';
	}
	secret = buf;
	if (!secret_valid(secret)) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return ctl_fail("the secret must be non-empty, at most %d bytes, without control characters", SECRET_MAX);
	}

	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return 1;
	}
	char *path = config_path(&c->cfg, c->cfg.secrets_file);
	const struct account *a = ctl_find_account(&t, addr);
	if (a == NULL)
		goto out;
	if (!a->apop) {
		ctl_fail("%s@%s has not opted in to CRAM-MD5 (apop flag 0): no secret stored", a->name, a->domain);
		goto out;
	}
	if (check_table(path) < 0)
		goto out;
	char *canon = xasprintf("%s@%s", a->name, a->domain);
	if (secrets_set(path, canon, secret) < 0) {
		ctl_fail("save %s: %s", path, strerror(errno));
	} else {
		if (generated)
			printf("secret: %s\n", secret);
		printf("secret set for %s\n", canon);
		rc = 0;
	}
	free(canon);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	free(path);
	return ctl_tables_done(c, &t, rc);
}

static int secret_del(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage(USAGE_DEL);
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0)
		return 1;
	int rc = 1;
	char *path = config_path(&c->cfg, c->cfg.secrets_file);
	/* The account may be gone already; then the address is taken as written. */
	const char *addr = argv[1];
	char *canon = NULL;
	const char *at = strrchr(addr, '@');
	if (at == NULL || at == addr || at[1] == '\0') {
		ctl_fail("\"%s\" is not USER@DOMAIN", addr);
		goto out;
	}
	const struct domain *d = domains_find(&t.domains, at + 1);
	char *local = xstrndup(addr, (size_t)(at - addr));
	const struct account *a = accounts_find(&t.accounts, local, d ? d->name : at + 1);
	free(local);
	canon = a ? xasprintf("%s@%s", a->name, a->domain) : xstrdup(addr);
	if (check_table(path) < 0)
		goto out;
	if (secrets_del(path, canon) < 0) {
		if (errno == ENOENT)
			ctl_fail("no secret for %s", canon);
		else
			ctl_fail("save %s: %s", path, strerror(errno));
		goto out;
	}
	printf("secret deleted for %s\n", canon);
	rc = 0;
out:
	free(canon);
	free(path);
	return ctl_tables_done(c, &t, rc);
}

static int secret_list(struct ctl *c, int argc, char **argv)
{
	if (argc != 1)
		return ctl_usage(USAGE_LIST);
	char *path = config_path(&c->cfg, c->cfg.secrets_file);
	struct secret_table st;
	int nerr = load_table(&st, path);
	/* Addresses only: the secrets never leave the file through this command. */
	for (size_t i = 0; i < st.n; i++)
		printf("%s\n", st.addr[i]);
	secrets_free(&st);
	free(path);
	return nerr ? 1 : 0;
}

int ctl_secret(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
		{ "set", secret_set }, { "del", secret_del }, { "list", secret_list },
	};

	return ctl_dispatch(c, "secret", cmds, sizeof(cmds) / sizeof(cmds[0]), USAGE_ALL, argc, argv);
}
