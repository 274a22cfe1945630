/* tls_client: client context and per-connection SSL objects (see tls_client.h). */
#include "tls/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static void openssl_errors(struct buf *errors, const char *what)
{
	unsigned long e;
	char text[256];
	buf_appendf(errors, "tls client: %s", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, text, sizeof(text));
		buf_appendf(errors, ": %s", text);
	}
	buf_puts(errors, "\n");
}

SSL_CTX *tls_client_context(const char *cafile, struct buf *errors)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		openssl_errors(errors, "cannot create a context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	int ok = cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		openssl_errors(errors, cafile ? "cannot load the CA file" : "cannot load the system CA store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void tls_client_context_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

static int is_ip_literal(const char *s)
{
	unsigned char a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

SSL *tls_client_session(SSL_CTX *ctx, const char *servername, int verify)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	int named = servername && servername[0];
	/* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName." */
	if (named && !is_ip_literal(servername) && SSL_set_tlsext_host_name(ssl, servername) != 1)
		goto fail;
	if (verify) {
		if (named && is_ip_literal(servername)) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
			if (X509_VERIFY_PARAM_set1_ip_asc(vp, servername) != 1)
				goto fail;
		} else if (named) {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(ssl, servername) != 1)
				goto fail;
		}
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	}
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}
