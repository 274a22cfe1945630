/*
 * tls_client: the client TLS context (OpenSSL) of the deliver process.
 *
 * One context per process: TLS 1.2 or newer, no compression or renegotiation,
 * the system CA store (or a given CA file, for tests and private smart hosts).
 * Whether a peer's certificate is verified is decided per connection, because
 * opportunistic STARTTLS to an MX (RFC 7435) must not fail on a self-signed
 * certificate while a route configured for verification must.
 * Trusts nothing: the peer's certificate and name are checked by OpenSSL only.
 */
#ifndef TSUBAME_TLS_CLIENT_H
#define TSUBAME_TLS_CLIENT_H

#include "util/buf.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/*
 * A client context; cafile NULL = the system default store.  NULL with the
 * reasons appended to errors when OpenSSL refuses.
 */
SSL_CTX *tls_client_context(const char *cafile, struct buf *errors);
void tls_client_context_free(SSL_CTX *ctx);

/*
 * A new SSL for one connection.  servername: the host name we meant to reach
 * (sent as SNI unless it is an IP literal or empty, and checked against the
 * certificate when verify is set); verify 0 = encrypt without authenticating.
 * NULL when OpenSSL fails.
 */
SSL *tls_client_session(SSL_CTX *ctx, const char *servername, int verify);

#endif
