/*
 * dnsname: RFC 1035 name syntax (see dnsname.h).  Bytes are checked one by
 * one, never as a C string, so a name inside a longer line needs no copy.
 */
#include "util/dnsname.h"

static int ldh(unsigned char c, unsigned flags)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       (c == '_' && (flags & DNSNAME_UNDERSCORE));
}

int dnsname_valid(const char *s, size_t n, unsigned flags)
{
	size_t label = 0;
	if (n == 0 || n > DNSNAME_MAX)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)s[i] : '.';
		if (c == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!ldh(c, flags) || (label == 0 && c == '-'))
			return 0;
		label++;
	}
	return 1;
}
