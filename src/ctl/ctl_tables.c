/*
 * ctl_tables: load, lock and save the domains and accounts tables for tsubamectl,
 * and the dispatch and option reset every table command family uses.
 * The lock is an flock on the configuration directory: both tables live there by
 * default, and `domain del -f` changes both, so one lock covers every change.
 */
#include "ctl/ctl_tables.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/xalloc.h"

int ctl_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("tsubamectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int ctl_usage(const char *usage)
{
	fprintf(stderr, "usage: tsubamectl %s\n", usage);
	return 2;
}

void ctl_reset_getopt(void)
{
	optind = 0; /* glibc: a full re-initialisation, as each subcommand parses anew */
	opterr = 1;
}

int ctl_dispatch(struct ctl *c, const char *family, const struct ctl_cmd *cmds, size_t ncmds,
    const char *usage_all, int argc, char **argv)
{
	/* Accept argv with or without the family name in front (as ctl_queue does). */
	if (argc > 0 && strcmp(argv[0], family) == 0) {
		argc--;
		argv++;
	}
	if (argc < 1)
		return ctl_usage(usage_all);
	for (size_t i = 0; i < ncmds; i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			return cmds[i].run(c, argc, argv);
	return ctl_usage(usage_all);
}

static int lock_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		ctl_fail("open %s: %s", dir, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX) < 0) {
		ctl_fail("lock %s: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int ctl_tables_open(struct ctl *c, struct ctl_tables *t, enum ctl_open_mode mode)
{
	struct buf errors;
	int nerr;

	memset(t, 0, sizeof(*t));
	t->lock_fd = -1;
	t->domains_path = config_path(&c->cfg, c->cfg.domains_file);
	t->accounts_path = config_path(&c->cfg, c->cfg.accounts_file);
	if (mode == CTL_WRITE) {
		char *copy = xstrdup(t->accounts_path);
		const char *dir = c->cfg.config_dir && *c->cfg.config_dir ? c->cfg.config_dir : dirname(copy);
		t->lock_fd = lock_dir(dir);
		free(copy);
		if (t->lock_fd < 0)
			goto fail;
	}
	/* Read only after taking the lock: the tables are then the latest ones. */
	buf_init(&errors, 64 * 1024);
	nerr = domains_load(&t->domains, t->domains_path, &errors);
	nerr += accounts_load(&t->accounts, t->accounts_path, &errors);
	if (nerr > 0) {
		fputs(buf_cstr(&errors), stderr);
		if (mode == CTL_WRITE) {
			ctl_fail("%d error%s in the tables: fix them before changing anything", nerr, nerr == 1 ? "" : "s");
			buf_free(&errors);
			goto fail;
		}
	}
	buf_free(&errors);
	return 0;
fail:
	ctl_tables_close(t);
	return -1;
}

void ctl_tables_close(struct ctl_tables *t)
{
	domains_free(&t->domains);
	accounts_free(&t->accounts);
	free(t->domains_path);
	free(t->accounts_path);
	t->domains_path = t->accounts_path = NULL;
	if (t->lock_fd >= 0)
		close(t->lock_fd); /* releases the flock */
	t->lock_fd = -1;
}

int ctl_tables_done(struct ctl *c, struct ctl_tables *t, int rc)
{
	ctl_tables_close(t);
	if (rc == 0)
		ctl_reload(c);
	return rc;
}

int ctl_split_address(const char *addr, char *local, size_t lsz, char *domain, size_t dsz)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || at == addr || at[1] == '\0' || (size_t)(at - addr) >= lsz || strlen(at + 1) >= dsz)
		return -1;
	memcpy(local, addr, (size_t)(at - addr));
	local[at - addr] = '\0';
	snprintf(domain, dsz, "%s", at + 1);
	return 0;
}

struct account *ctl_find_account(struct ctl_tables *t, const char *addr)
{
	char local[256], domain[256];

	if (ctl_split_address(addr, local, sizeof(local), domain, sizeof(domain)) < 0) {
		ctl_fail("\"%s\" is not USER@DOMAIN", addr);
		return NULL;
	}
	const struct domain *d = domains_find(&t->domains, domain);
	const struct account *a = accounts_find(&t->accounts, local, d ? d->name : domain);
	if (a == NULL) {
		ctl_fail("no such account: %s", addr);
		return NULL;
	}
	return (struct account *)a; /* the table is ours to change */
}

int ctl_save_domains(struct ctl_tables *t)
{
	if (domains_save(&t->domains, t->domains_path) < 0)
		return -ctl_fail("save %s: %s", t->domains_path, strerror(errno));
	return 0;
}

int ctl_save_accounts(struct ctl_tables *t)
{
	if (accounts_save(&t->accounts, t->accounts_path) < 0)
		return -ctl_fail("save %s: %s", t->accounts_path, strerror(errno));
	return 0;
}
