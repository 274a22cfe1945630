/*
 * cmd_starttls: STARTTLS (RFC 3207).
 *
 * CVE-2011-0411: anything the client pipelined after "STARTTLS\r\n" arrived in
 * plaintext and must not be executed inside the TLS session: it is discarded
 * before the handshake starts.  After the handshake the session forgets all it
 * learned in plaintext (HELO name, transaction), as RFC 3207 4.2 requires.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#include "smtp/smtpd.h"
#include "tls/tls.h"
#include "util/log.h"

void cmd_starttls(struct session *s, const char *args)
{
	struct smtpd *sd = s->sd;
	if (!sd->tls) {
		session_reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (*args) {
		session_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (s->tls) {
		session_reply(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	SSL *ssl = tls_session_new(sd->tls);
	if (!ssl) {
		session_reply(s, 454, "4.7.0", "TLS not available due to temporary reason");
		return;
	}
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t junk = evbuffer_get_length(in);
	if (junk) {
		log_info("session=%llu event=starttls_plaintext_discarded client=%s bytes=%zu", (unsigned long long)s->id,
		    s->client_addr, junk);
		evbuffer_drain(in, junk);
	}
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* The 220 sits in the plain bufferevent's output and leaves before any TLS record. */
	struct bufferevent *tls = bufferevent_openssl_filter_new(sd->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		log_warnx("session=%llu event=starttls_failed client=%s", (unsigned long long)s->id, s->client_addr);
		session_close_after_reply(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	session_txn_free(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	/* RFC 3207 4.2: nothing learned in plaintext survives, a plaintext login included. */
	free(s->auth_id);
	s->auth_id = NULL;
	s->tls = 1;
	session_set_bev(s, tls);
}
