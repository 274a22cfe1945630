/*
 * tls: the server TLS context (OpenSSL) shared by every session of smtpd.
 *
 * TLS 1.2 or newer, forward-secret AEAD ciphers, no compression, no
 * renegotiation, server cipher preference.  The context is SNI-ready: a
 * servername callback records the requested name and is the place where
 * per-name certificates will be chosen.  Sessions get their SSL objects from
 * tls_session_new() and run them through libevent's OpenSSL bufferevents.
 */
#ifndef TSUBAME_TLS_H
#define TSUBAME_TLS_H

#include <stddef.h>

#include "conf/config.h"
#include "util/buf.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* NULL with reasons in errors when the certificate, key or settings are unusable. */
SSL_CTX *tls_server_context(const struct config *c, struct buf *errors);
void tls_context_free(SSL_CTX *ctx);
SSL *tls_session_new(SSL_CTX *ctx);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for logs and Received:. */
void tls_describe(SSL *ssl, char *out, size_t outsz);
/* The SNI name the client asked for, or "". */
const char *tls_servername(SSL *ssl);

#endif
