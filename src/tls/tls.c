/* tls: server context and per-session helpers (see tls.h). */
#include "tls/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

static void openssl_errors(struct buf *errors, const char *what, const char *path)
{
	unsigned long e;
	char text[256];
	buf_appendf(errors, "%s: %s", path, what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, text, sizeof(text));
		buf_appendf(errors, ": %s", text);
	}
	buf_puts(errors, "\n");
}

/* SNI: accept every name with the default certificate for now; per-name contexts plug in here. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
	return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *tls_server_context(const struct config *c, struct buf *errors)
{
	if (!c->tls_cert_file[0] || !c->tls_key_file[0])
		return NULL;
	char *cert = config_path(c, c->tls_cert_file);
	char *key = config_path(c, c->tls_key_file);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int ok = ctx != NULL;
	if (ok) {
		SSL_CTX_set_min_proto_version(ctx, c->tls_min_version == TLS_V1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
		/* No compression (CRIME), no renegotiation, our cipher order; tickets are fine. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
		SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
		if (SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
			openssl_errors(errors, "tls_ciphers is not a usable cipher list", c->path);
			ok = 0;
		}
	}
	if (ok && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_errors(errors, "cannot load the certificate", cert);
		ok = 0;
	}
	if (ok && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		openssl_errors(errors, "cannot load the private key", key);
		ok = 0;
	}
	if (ok && SSL_CTX_check_private_key(ctx) != 1) {
		openssl_errors(errors, "the private key does not match the certificate", key);
		ok = 0;
	}
	free(cert);
	free(key);
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void tls_context_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

SSL *tls_session_new(SSL_CTX *ctx)
{
	return SSL_new(ctx);
}

void tls_describe(SSL *ssl, char *out, size_t outsz)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0;
	int bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
	snprintf(out, outsz, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl), c ? SSL_CIPHER_get_name(c) : "none",
	    bits, alg);
}

const char *tls_servername(SSL *ssl)
{
	const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	return n ? n : "";
}
