/*
 * reload: load the configuration and local tables at start and on SIGHUP, all
 * or nothing (see reload.h).  It trusts the files only as far as the parsers do.
 */
#include "local/reload.h"

#include <stdlib.h>

#include "util/log.h"
#include "util/xalloc.h"

int local_load(struct config *cfg, const char *path, struct local_tables *t, struct buf *errors)
{
	int n = 0;

	if (path)
		n = config_load(cfg, path, errors);
	if (n == 0)
		n = local_tables_load(t, cfg, errors);
	return n;
}

struct local_tables *local_start(const struct config *cfg)
{
	struct local_tables *t = xcalloc(1, sizeof(*t));
	struct buf errors;

	buf_init(&errors, 64 * 1024);
	if (local_tables_load(t, cfg, &errors) != 0)
		fatalx("event=start_failed errors=%s", lq(buf_cstr(&errors)));
	buf_free(&errors);
	return t;
}

int local_reload(struct config **cfg, struct local_tables **tables)
{
	struct config *c = xcalloc(1, sizeof(*c));
	struct local_tables *t = xcalloc(1, sizeof(*t));
	struct buf errors;
	int r = 0;

	buf_init(&errors, 64 * 1024);
	if (local_load(c, (*cfg)->path, t, &errors) == 0) {
		config_free(*cfg);
		free(*cfg);
		local_tables_free(*tables);
		free(*tables);
		*cfg = c;
		*tables = t;
	} else {
		log_warnx("event=reload_failed errors=%s", lq(buf_cstr(&errors)));
		config_free(c);
		free(c);
		local_tables_free(t);
		free(t);
		r = -1;
	}
	buf_free(&errors);
	return r;
}

void local_release(struct config *cfg, const struct config *initial, struct local_tables *tables)
{
	local_tables_free(tables);
	free(tables);
	if (cfg != initial) {
		config_free(cfg);
		free(cfg);
	}
}
