/*
 * config: the main configuration file, driven by one typed parameter table.
 *
 * The table in config.c ({name, type, default, field, min, max, doc}) is the single
 * truth: it drives parsing, `tsubamed -n` (errors as file:line), `tsubamed -p` (the
 * effective values) and docs/configuration.md (`tsubamed -D`).  Values live in a
 * struct config owned by whoever loaded it; nothing here is global, so a reload
 * builds a new struct and swaps it in only when it parsed cleanly.
 */
#ifndef TSUBAME_CONFIG_H
#define TSUBAME_CONFIG_H

#include <stddef.h>

#include "util/buf.h"

enum ip_mode { IP_MODE_V4 = 0, IP_MODE_V4V6, IP_MODE_V6 };
enum bare_newline_mode { BARE_NEWLINE_NORMALIZE = 0, BARE_NEWLINE_REJECT };
enum tls_version { TLS_V1_2 = 0, TLS_V1_3 };
/* R3 "送信者の信頼度": what an authenticated user may use as sender. */
enum sender_trust { TRUST_AUTH_ID = 0, TRUST_ENVELOPE, TRUST_ENVELOPE_FROM };

struct strlist {
	char **v;
	size_t n;
};

/* One listening endpoint: "127.0.0.1:2525", "[::1]:25", "*:25", "192.0.2.4:465*". */
/* What a listener serves (master -> smtpd): listen, submission_listen, odmr_listen. */
#define LISTEN_KIND_SMTP 0
#define LISTEN_KIND_SUBMISSION 1
#define LISTEN_KIND_ODMR 2

struct listen_addr {
	char host[64];   /* numeric address, or "*" for every address of ip_mode */
	char port[8];
	int implicit_tls; /* port written with a trailing '*' (R1) */
	char text[80];   /* as written, for logs and errors */
};

struct config {
	char *path;        /* the main file as given */
	char *config_dir;  /* its directory: relative table paths start here */

	char *hostname;
	char *node_id;
	char *work_dir;
	char *user;
	int debug;

	struct listen_addr *listen;
	size_t nlisten;
	struct listen_addr *submission_listen;   /* AUTH required before MAIL (R1: port 587) */
	size_t nsubmission_listen;
	struct listen_addr *odmr_listen;         /* E6: AUTH + ATRN only (RFC 2645: port 366) */
	size_t nodmr_listen;
	int ip_mode;
	struct strlist hidden_ips;
	long max_sessions;

	long max_message_size;
	long max_recipients;
	long max_line_length;
	long max_errors;
	long command_timeout;
	long data_timeout;
	int vrfy_expn;
	int bare_newline;
	long max_received_headers;
	char *received_template;

	char *domains_file;
	char *accounts_file;
	char *aliases_file;
	char *mailbox_path;
	long mailbox_size_limit;

	char *tls_cert_file;
	char *tls_key_file;
	int tls_min_version;
	char *tls_ciphers;

	unsigned auth_methods;     /* bit mask 1 << enum sasl_mech; 0 = "NO" */
	char *auth_methods_text;
	int auth_plaintext;
	int security_level;        /* 1, 2, 3 (R3) */
	int sender_trust;          /* enum sender_trust */
	long auth_failure_delay;
	long auth_max_failures;
	long auth_max_failures_per_ip;
	long auth_failure_window;
	int auth_received;
	char *secrets_file;
	char *relay_rules_file;

	struct strlist dnsbl;
	struct strlist dnsbl_exempt;
	struct strlist dns_servers;
	long dns_timeout;

	/* delivery engine (D1-D4) */
	int delivery_mode;          /* enum route_mode */
	char *smarthost;            /* host[:port][*] */
	int smarthost_is_domain;
	char *smarthost_auth_user;
	char *smarthost_auth_password;
	int smarthost_auth_per_account;
	char *smarthost_auth_file;
	char *gateway_file;
	int forward_all;
	char *forward_gateway;      /* host[:port][*]; empty = the smart host */
	char *hosts_file;
	int abort_on_rcpt_5xx;
	int bounce_on_mx_5xx;
	int bounce_on_smarthost_5xx;
	long delivery_port;
	int smtp_tls;               /* enum smtp_tls_mode subset: none, opportunistic, mandatory */
	long smtp_timeout;
	long smtp_connect_timeout;
	int retry_without_waiting;
	long retry_refused_count;
	long retry_line_period;
	long retry_noanswer_period;
	long mx_cache_time;
	int bounce_when_no_mx;
	long delivery_concurrency;
	long destination_concurrency;     /* D1: remote deliveries in flight per recipient domain */
	long smtp_connection_cache_size;  /* D1: idle connections kept per deliver process; 0 = no reuse */
	long smtp_connection_cache_time;  /* seconds an idle connection is kept */
	long smtp_connection_reuse_limit; /* transactions per connection */

	long deliver_processes;
	long retry_interval;
	long queue_lifetime;
	long shutdown_timeout;
	long bounce_notice_lines;
	long bounce_size_limit;
	long delay_warning_time;
	int bounce_admin_copy;
	char *postmaster_address;

	/* E3: held domains and the ETRN server (docs/etrn.md) */
	char *hold_file;
	long hold_lifetime;
	struct strlist etrn_clients;
	/* E1, E2, E7: relay domains, backup MX, peer servers (docs/peers.md, docs/relay-domains.md) */
	char *relay_domains_file;
	char *peers_file;
	struct strlist self_addresses;    /* more addresses that are us (NAT): an MX or peer there is us */
	long verify_timeout;              /* seconds a RCPT waits for a recipient probe */
	long verify_concurrency;          /* probes in flight at once */
	long verify_cache_size;           /* probe results remembered */
	long verify_positive_ttl;
	long verify_negative_ttl;
	long verify_tempfail_ttl;
	/* dial-up operation and pull requests (E4, E5; src/queue/link.c, docs/dialup.md) */
	int dialup;                 /* remote deliveries only while the link is up */
	char *link_check_command;   /* exit status 0 = link up; "" = tsubamectl link up|down only */
	long link_check_interval;
	long link_check_timeout;
	char *link_up_command;      /* run at every link-up (e.g. tsubamectl atrn); "" = none */
	long link_up_command_timeout;
	long queue_timer;           /* seconds between queue runs while the link is up; 0 = off */
	long link_hold_open;        /* seconds the line is held open after it came up */
	char *etrn_server;          /* host[:port]; "" = no pull requests */
	struct strlist etrn_domains;/* domain, @domain, #queue */
	int etrn_tls;               /* enum smtp_tls_mode subset: none, opportunistic, mandatory */
};

/* Defaults only (no file). */
void config_defaults(struct config *c);
/*
 * Load `path` over the defaults.  Every problem is appended to errors as
 * "file:line: message\n"; returns the number of problems (0 = usable).
 */
int config_load(struct config *c, const char *path, struct buf *errors);
void config_free(struct config *c);
/* Resolve a table path relative to the configuration directory (caller frees). */
char *config_path(const struct config *c, const char *file);

/* Write every parameter with its effective value, "name = value" lines. */
void config_print(const struct config *c, int fd);
/* Write the Markdown reference of every parameter (docs/configuration.md). */
void config_print_docs(int fd);

#endif
