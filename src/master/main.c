/*
 * tsubamed: the daemon's command line.
 *   tsubamed [-c FILE] [-d]     run in the foreground (the master process)
 *   tsubamed -n [-c FILE]       check the configuration and its tables
 *   tsubamed -p [-c FILE]       print the effective parameters
 *   tsubamed -D                 print the configuration reference (Markdown)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "master/master.h"
#include "util/log.h"
#include "util/xalloc.h"

#define DEFAULT_CONFIG "/etc/tsubame/tsubamed.conf"

static void usage(void)
{
	fprintf(stderr, "usage: tsubamed [-c config] [-d] | -n [-c config] | -p [-c config] | -D\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	int check = 0, print = 0, docs = 0, debug = 0, opt;
	while ((opt = getopt(argc, argv, "c:npDdh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'p': print = 1; break;
		case 'D': docs = 1; break;
		case 'd': debug = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("tsubamed");
	if (docs) {
		config_print_docs(1);
		return 0;
	}
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct buf errors;
	buf_init(&errors, 1 << 20);
	int problems = config_load(cfg, path, &errors);
	if (errors.len)
		fputs(buf_cstr(&errors), stderr);
	buf_free(&errors);
	if (problems == 0 && check)
		problems += master_check(cfg, path);
	if (problems || check || print) {
		if (problems)
			fprintf(stderr, "tsubamed: %d problem%s in %s\n", problems, problems == 1 ? "" : "s", path);
		else if (check)
			printf("tsubamed: %s: configuration OK\n", path);
		else
			config_print(cfg, 1);
		config_free(cfg);
		free(cfg);
		return problems ? 1 : 0;
	}
	if (debug)
		cfg->debug = 1;
	int rc = master_run(cfg);
	config_free(cfg);
	free(cfg);
	return rc;
}
