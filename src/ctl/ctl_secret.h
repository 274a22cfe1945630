/*
 * ctl_secret: `tsubamectl secret set|del|list`, the CRAM-MD5 secrets table (R3).
 * Only accounts with the APOP flag may keep a plaintext-equivalent secret.
 */
#ifndef TSUBAME_CTL_SECRET_H
#define TSUBAME_CTL_SECRET_H

#include "ctl/ctl.h"

/* argv with or without the family name "secret" in front; exit status 0, 1 or 2. */
int ctl_secret(struct ctl *c, int argc, char **argv);

#endif
