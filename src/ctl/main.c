/*
 * tsubamectl: the administrator's command (O2).
 *   tsubamectl [-c FILE] queue|account|domain|link|etrn|reload|check ...
 */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "ctl/ctl_relay.h"
#include "ctl/ctl_secret.h"
#include "master/master.h"
#include "util/log.h"
#include "util/xalloc.h"

#define DEFAULT_CONFIG "/etc/tsubame/tsubamed.conf"

static void usage(void)
{
	fprintf(stderr,
	    "usage: tsubamectl [-c config] command ...\n"
	    "  queue list | show QID [--body] | delete QID...\n"
	    "  queue flush [DOMAIN] | retry QID | hold QID|ALL | release QID|ALL\n"
	    "                 ask the running queue manager to deliver now, hold or release\n"
	    "  account add|del|passwd|list|show|import|export ...\n"
	    "  domain add|set|del|list ...\n"
	    "  secret set|del|list ...       CRAM-MD5 secrets of accounts that opted in\n"
	    "  relay check IP SENDER RECIPIENT [--auth] | block IP\n"
	    "  link up|down|status | wait [SECONDS]   the dial-up link (dialup = yes)\n"
	    "  atrn [--starttls] [--user U --password-file F] [--timeout S] HOST[:PORT] [DOMAIN...]\n"
	    "  etrn [--starttls] [--force] [--timeout S] HOST[:PORT] DOMAIN|@DOMAIN|#QUEUE...\n"
	    "                 ask a mail server to send the mail it holds for us (ETRN)\n"
	    "  check          check the configuration and tables (like tsubamed -n)\n"
	    "  reload         ask the running daemon to reload\n");
	exit(2);
}

int ctl_reload(struct ctl *c)
{
	c->reload_wanted = 1;
	return 0;
}

/* SIGHUP to the pid in work_dir/tsubamed.pid: 0 when signalled, 1 when no daemon runs. */
static int signal_daemon(const struct ctl *c)
{
	char *pidfile = xasprintf("%s/tsubamed.pid", c->cfg.work_dir);
	FILE *fp = fopen(pidfile, "r");
	free(pidfile);
	if (!fp)
		return 1;
	long pid = 0;
	int ok = fscanf(fp, "%ld", &pid) == 1 && pid > 1;
	fclose(fp);
	if (!ok || kill((pid_t)pid, SIGHUP) < 0)
		return 1;
	return 0;
}

/*
 * Tables written by root must stay readable by the daemon's unprivileged
 * processes (they reload them on SIGHUP), and the accounts file holds password
 * hashes: root-owned, group of the mail user, mode 0640.
 */
static void fix_table_owner(const struct ctl *c)
{
	if (getuid() != 0)
		return;
	struct passwd *pw = getpwnam(c->cfg.user);
	if (!pw)
		return;
	const char *files[] = { c->cfg.domains_file, c->cfg.accounts_file, c->cfg.aliases_file, c->cfg.secrets_file,
		c->cfg.relay_rules_file };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *p = config_path(&c->cfg, files[i]);
		struct stat st;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			if (chown(p, 0, pw->pw_gid) < 0 || chmod(p, 0640) < 0)
				fprintf(stderr, "tsubamectl: warning: cannot set owner of %s\n", p);
		}
		free(p);
	}
}

int main(int argc, char **argv)
{
	const char *path = getenv("TSUBAME_CONFIG") ? getenv("TSUBAME_CONFIG") : DEFAULT_CONFIG;
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-c") && i + 1 < argc) {
			path = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage();
		} else {
			usage();
		}
	}
	if (i >= argc)
		usage();
	log_init("tsubamectl");
	struct ctl c;
	memset(&c, 0, sizeof(c));
	c.config_path = path;
	struct buf errors;
	buf_init(&errors, 1 << 20);
	int problems = config_load(&c.cfg, path, &errors);
	if (problems) {
		fputs(buf_cstr(&errors), stderr);
		buf_free(&errors);
		config_free(&c.cfg);
		return 1;
	}
	buf_free(&errors);
	const char *cmd = argv[i];
	int rc = 2;
	if (!strcmp(cmd, "queue"))
		rc = ctl_queue(&c, argc - i - 1, argv + i + 1);
	else if (!strcmp(cmd, "account")) {
		rc = ctl_account(&c, argc - i - 1, argv + i + 1);
		fix_table_owner(&c);
	} else if (!strcmp(cmd, "domain")) {
		rc = ctl_domain(&c, argc - i - 1, argv + i + 1);
		fix_table_owner(&c);
	} else if (!strcmp(cmd, "secret")) {
		rc = ctl_secret(&c, argc - i - 1, argv + i + 1);
		fix_table_owner(&c);
	} else if (!strcmp(cmd, "relay")) {
		rc = ctl_relay(&c, argc - i - 1, argv + i + 1);
		fix_table_owner(&c);
	} else if (!strcmp(cmd, "link")) {
		rc = ctl_link(&c, argc - i - 1, argv + i + 1);
	} else if (!strcmp(cmd, "atrn")) {
		rc = ctl_atrn(&c, argc - i - 1, argv + i + 1);
	} else if (!strcmp(cmd, "etrn")) {
		rc = ctl_etrn(&c, argc - i - 1, argv + i + 1);
	} else if (!strcmp(cmd, "check")) {
		rc = master_check(&c.cfg, path) ? 1 : 0;
		if (!rc)
			printf("%s: configuration OK\n", path);
	} else if (!strcmp(cmd, "reload")) {
		rc = signal_daemon(&c);
		fprintf(rc ? stderr : stdout, rc ? "tsubamectl: no running daemon found\n" : "reload requested\n");
	} else
		usage();
	if (c.reload_wanted)
		signal_daemon(&c);
	config_free(&c.cfg);
	return rc;
}
