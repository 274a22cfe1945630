/*
 * ctl_relay: `tsubamectl relay check|block`, the relay rules file (R4).
 *   relay check IP SENDER RECIPIENT [--auth]   what the daemon would answer at RCPT:
 *       exit 0 accept, 1 reject (or tables the daemon would refuse to load), 2 usage
 *   relay block IP                             "IP false" as the first rule, then reload
 */
#ifndef TSUBAME_CTL_RELAY_H
#define TSUBAME_CTL_RELAY_H

#include "ctl/ctl.h"

/* argv with or without the family name "relay" in front. */
int ctl_relay(struct ctl *c, int argc, char **argv);

#endif
