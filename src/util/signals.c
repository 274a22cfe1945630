/* signals: block / unblock the lifecycle signals (see signals.h). */
#include "util/signals.h"

#include <signal.h>
#include <stddef.h>

static void change(int how)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(how, &set, NULL);
}

void signals_block_lifecycle(void) { change(SIG_BLOCK); }

void signals_unblock_lifecycle(void) { change(SIG_UNBLOCK); }
