/*
 * header: the few header-field lookups smtpd needs (sender trust compares the
 * From: address with the authenticated user, R3).  Input is the raw header
 * section (CRLF lines, possibly folded); nothing here trusts its syntax.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtpd.h"

/* Extract the single mailbox of the From: field: the <...> part, else the bare addr-spec. */
int header_from_address(const char *p, size_t len, char *out, size_t outsz)
{
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && p[eol] != '\n')
			eol++;
		size_t linelen = eol - i;
		if (linelen == 0 || (linelen == 1 && p[i] == '\r'))
			return -1; /* end of the header section */
		if (linelen > 5 && !strncasecmp(p + i, "From:", 5)) {
			/* Unfold: take this line and its continuation lines. */
			char value[2048];
			size_t o = 0;
			size_t j = i + 5;
			for (;;) {
				for (; j < len && p[j] != '\n' && o < sizeof(value) - 1; j++)
					if (p[j] != '\r')
						value[o++] = p[j];
				if (j + 1 < len && (p[j + 1] == ' ' || p[j + 1] == '\t')) {
					j++;
					continue;
				}
				break;
			}
			value[o] = '\0';
			const char *lt = strrchr(value, '<');
			const char *start, *end;
			if (lt) {
				start = lt + 1;
				end = strchr(start, '>');
				if (!end)
					return -1;
			} else {
				start = value;
				while (*start == ' ' || *start == '\t')
					start++;
				end = start;
				while (*end && *end != ' ' && *end != '\t' && *end != '(')
					end++;
			}
			size_t n = (size_t)(end - start);
			if (n == 0 || n >= outsz || memchr(start, ',', n))
				return -1;
			memcpy(out, start, n);
			out[n] = '\0';
			return 0;
		}
		i = eol + 1;
	}
	return -1;
}
