/*
 * dnsname: the one check of a DNS host or domain name written in a table or
 * the configuration (RFC 1035 2.3.1 / 2.3.4): labels of letters, digits and
 * '-', not starting or ending with '-', 1 to 63 bytes each, at most 253 bytes
 * in all, no trailing dot.  Hosts files also carry '_' in names: callers that
 * read such names pass DNSNAME_UNDERSCORE.
 */
#ifndef TSUBAME_DNSNAME_H
#define TSUBAME_DNSNAME_H

#include <stddef.h>

#define DNSNAME_MAX 253
#define DNSNAME_UNDERSCORE 0x1

/* 1 when the n bytes at s are such a name. */
int dnsname_valid(const char *s, size_t n, unsigned flags);

#endif
