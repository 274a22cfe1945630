/*
 * xtext: RFC 3461 section 4 encoding (see xtext.h).
 */
#include "util/xtext.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* RFC 3461: "+" followed by two upper case hexadecimal digits */
}

static int plain(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

int xtext_decode(const char *in, size_t n, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '+') {
			if (n - i < 3)
				return -1;
			int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (unsigned char)(h << 4 | l);
			i += 2;
			/* Decoded values become header text (RFC 3461: printable US-ASCII): no controls, no 8-bit. */
			if (c < 32 || c > 126)
				return -1;
		} else if (!plain(c)) {
			return -1;
		}
		if (o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	if (outsz == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}

int xtext_encode(const char *s, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		size_t need = plain(c) ? 1 : 3;
		if (o + need >= outsz)
			return -1;
		if (need == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (outsz == 0)
		return -1;
	out[o] = '\0';
	return 0;
}
