/*
 * xtext: the encoding of DSN parameter values (RFC 3461 4): printable ASCII
 * except '+' and '=' as themselves, every other byte as "+XX" (upper-case hex).
 * Used for ENVID and ORCPT on the way in (smtpd) and out (the SMTP client).
 */
#ifndef TSUBAME_XTEXT_H
#define TSUBAME_XTEXT_H

#include <stddef.h>

/*
 * Decode n bytes of xtext into out (outsz includes the NUL).  Strict: a '+'
 * must be followed by two upper-case hex digits, raw bytes must be 33..126
 * except '+' and '=', and the decoded value must be printable US-ASCII (it
 * ends up in DSN header fields).  Returns the decoded length, or -1.
 */
int xtext_decode(const char *in, size_t n, char *out, size_t outsz);

/* Encode s into out (outsz includes the NUL).  0, or -1 when it does not fit. */
int xtext_encode(const char *s, char *out, size_t outsz);

#endif
