/*
 * config: parse the main configuration file through the typed parameter table.
 * Syntax: "name = value" lines; '#' starts a comment line; a line starting with
 * white space continues the previous value (as in Postfix main.cf).
 */
#include "conf/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/sasl.h"
#include "deliver/etrn_proto.h"
#include "util/log.h"
#include "util/xalloc.h"

enum ptype { P_STR, P_INT, P_SIZE, P_TIME, P_BOOL, P_ENUM, P_LIST, P_LISTEN, P_SUBMISSION, P_ODMR, P_AUTH, P_LEVEL };

struct param {
	const char *name;
	enum ptype type;
	const char *def;
	size_t off;
	long min, max;
	const char *const *enums; /* P_ENUM: names, index = stored value */
	const char *doc;
};

static const char *const ip_modes[] = { "ipv4", "ipv4+ipv6", "ipv6", NULL };
static const char *const bare_modes[] = { "normalize", "reject", NULL };
static const char *const tls_versions[] = { "TLSv1.2", "TLSv1.3", NULL };
static const char *const delivery_modes[] = { "direct", "smarthost", "direct_then_smarthost", NULL };
static const char *const smtp_tls_modes[] = { "none", "opportunistic", "mandatory", NULL };
static const char *const trust_modes[] = { "auth_id", "auth_id=envelope", "auth_id=envelope=from", NULL };

#define F(x) offsetof(struct config, x)
static const struct param params[] = {
	{ "hostname", P_STR, "", F(hostname), 0, 0, NULL,
	  "Host name used in the greeting, EHLO reply, Received: headers and Maildir file names. Empty: the system host name. On the addresses of a domain with ip= and hostname= in the domains table, the greeting, EHLO reply and Received: header use that hostname instead (docs/virtual-hosts.md)." },
	{ "node_id", P_STR, "", F(node_id), 0, 0, NULL,
	  "Name of this node in a cluster sharing one spool; part of every queue id and of the active/ claim folder. Letters and digits only, at most 12. Empty: derived from the host name." },
	{ "work_dir", P_STR, "/var/spool/tsubame", F(work_dir), 0, 0, NULL,
	  "Work folder: the queue (queue/: incoming/, active/, deferred/, corrupt/, hold/), the logs (log/) and the queue manager's control socket (run/queue.ctl) live here. queue/ may be shared by the nodes of a cluster; run/ must be local to each node." },
	{ "user", P_STR, "tsubame", F(user), 0, 0, NULL,
	  "Unprivileged user the smtpd, queue and deliver processes run as after the master binds its listeners. Ignored when started as a non-root user." },
	{ "debug", P_BOOL, "no", F(debug), 0, 1, NULL, "Log debug lines (every SMTP command and reply)." },
	{ "listen", P_LISTEN, "127.0.0.1:25", F(listen), 0, 0, NULL,
	  "Listening endpoints, separated by spaces or commas: ADDRESS:PORT, [IPv6]:PORT, or *:PORT for every address allowed by ip_mode. A port ending in '*' is implicit TLS (R1). Several addresses may share a port (127.0.0.2:25 127.0.0.3:25); a domain bound to an address with ip= (docs/virtual-hosts.md) is served only on connections to it." },
	{ "submission_listen", P_SUBMISSION, "", F(submission_listen), 0, 0, NULL,
	  "Submission endpoints (R1: port 587; '*' after the port = implicit TLS): same syntax as listen, but every client must authenticate before MAIL (530 5.7.0). STARTTLS is offered as on listen." },
	{ "odmr_listen", P_ODMR, "", F(odmr_listen), 0, 0, NULL,
	  "On-Demand Mail Relay endpoints (E6, RFC 2645: port 366; '*' after the port = implicit TLS): same syntax as listen. Only AUTH and ATRN are served there: an account named in allow= of a held domain collects its mail over the same connection (docs/atrn.md). Empty: no ODMR service." },
	{ "ip_mode", P_ENUM, "ipv4", F(ip_mode), 0, 0, ip_modes,
	  "Which IP versions '*' listeners use: ipv4, ipv4+ipv6 or ipv6." },
	{ "hidden_ips", P_LIST, "", F(hidden_ips), 0, 0, NULL,
	  "Local addresses that never answer: a connection made to one of them is closed without a greeting (cluster real IPs)." },
	{ "max_sessions", P_INT, "0", F(max_sessions), 0, 1000000, NULL,
	  "Maximum concurrent SMTP sessions; 0 = unlimited. Over the limit a client gets 421 4.7.0 and is disconnected." },
	{ "max_message_size", P_SIZE, "10240000", F(max_message_size), 0, LONG_MAX, NULL,
	  "Largest message accepted, in bytes (k, m, g suffixes allowed); 0 = unlimited. Advertised in SIZE; 552 5.3.4 when exceeded." },
	{ "max_recipients", P_INT, "1000", F(max_recipients), 1, 1000000, NULL,
	  "Maximum recipients per message; further RCPT commands get 452 4.5.3." },
	{ "max_line_length", P_INT, "2048", F(max_line_length), 512, 1000000, NULL,
	  "Longest SMTP command line accepted, CRLF included; longer lines are skipped to their end and answered 500 5.5.2." },
	{ "max_errors", P_INT, "20", F(max_errors), 1, 100000, NULL,
	  "Errors (4xx/5xx replies) allowed per session before it is closed with 421 4.7.0." },
	{ "command_timeout", P_TIME, "300", F(command_timeout), 1, 86400, NULL,
	  "Seconds to wait for the next command (RFC 5321 4.5.3.2: at least 5 minutes)." },
	{ "data_timeout", P_TIME, "300", F(data_timeout), 1, 86400, NULL,
	  "Seconds to wait for the next block of message data." },
	{ "vrfy_expn", P_BOOL, "yes", F(vrfy_expn), 0, 1, NULL,
	  "Answer VRFY and EXPN (the manual's default). 'no' answers 252 2.5.2 without looking anything up." },
	{ "bare_newline", P_ENUM, "normalize", F(bare_newline), 0, 0, bare_modes,
	  "Message lines ending in a bare LF: 'normalize' stores them as CRLF lines, 'reject' refuses the message with 550 5.5.2. Either way only CRLF.CRLF ends DATA." },
	{ "max_received_headers", P_INT, "50", F(max_received_headers), 1, 1000, NULL,
	  "A message with more Received: headers than this, counting the one Tsubame adds, is a mail loop: rejected with 554 5.4.6 at DATA, bounced 5.4.6 at delivery." },
	{ "received_template", P_STR, "", F(received_template), 0, 0, NULL,
	  "File with the Received: header template (the manual's header.dat); empty = built-in template. See docs/received.md for the ${...} variables." },
	{ "tls_cert_file", P_STR, "", F(tls_cert_file), 0, 0, NULL,
	  "PEM certificate chain for STARTTLS and implicit-TLS listeners. Empty: no TLS (STARTTLS not offered; '*' listeners are an error)." },
	{ "tls_key_file", P_STR, "", F(tls_key_file), 0, 0, NULL, "PEM private key of tls_cert_file." },
	{ "tls_min_version", P_ENUM, "TLSv1.2", F(tls_min_version), 0, 0, tls_versions,
	  "Oldest TLS protocol accepted." },
	{ "tls_ciphers", P_STR, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS", F(tls_ciphers), 0, 0, NULL,
	  "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults): forward secrecy and AEAD only." },
	{ "auth_methods", P_AUTH, "PLAIN LOGIN CRAM-MD5", F(auth_methods), 0, 0, NULL,
	  "SMTP AUTH mechanisms offered: any of PLAIN LOGIN CRAM-MD5, or NO (the manual's \"NO\": AUTH off). CRAM-MD5 works only for accounts with the APOP flag and a secret (tsubamectl secret set)." },
	{ "auth_plaintext", P_BOOL, "no", F(auth_plaintext), 0, 1, NULL,
	  "Offer AUTH on connections without TLS. Off: AUTH is offered only after STARTTLS or on implicit TLS (538 5.7.11 otherwise)." },
	{ "security_level", P_LEVEL, "3", F(security_level), 1, 3, NULL,
	  "R3 security level: 1 = no authentication demanded; 2 = every client must authenticate (530 5.7.0); 3 = senders that are local accounts with the SMTP-auth flag must authenticate." },
	{ "sender_trust", P_ENUM, "auth_id", F(sender_trust), 0, 0, trust_modes,
	  "For authenticated users: auth_id = the login is enough; auth_id=envelope = MAIL FROM must be the login (553 5.7.1); auth_id=envelope=from = the From: header must be it too (550 5.7.1 after DATA)." },
	{ "auth_failure_delay", P_TIME, "2", F(auth_failure_delay), 0, 60, NULL,
	  "Seconds a failed AUTH waits before its 535 reply (slows password guessing)." },
	{ "auth_max_failures", P_INT, "3", F(auth_max_failures), 1, 1000, NULL,
	  "Failed AUTH attempts per session before it is closed with 421 4.7.0." },
	{ "auth_max_failures_per_ip", P_INT, "10", F(auth_max_failures_per_ip), 1, 1000000, NULL,
	  "Failed AUTH attempts per client address within auth_failure_window; beyond it AUTH answers 454 4.7.0 without checking." },
	{ "auth_failure_window", P_TIME, "10m", F(auth_failure_window), 1, 86400, NULL,
	  "Window for auth_max_failures_per_ip." },
	{ "auth_received", P_BOOL, "no", F(auth_received), 0, 1, NULL,
	  "Name the authenticated user in the Received: header (${auth})." },
	{ "secrets_file", P_STR, "secrets", F(secrets_file), 0, 0, NULL,
	  "CRAM-MD5 secrets: 'user@domain<TAB>secret' lines, for accounts that opted in (APOP flag)." },
	{ "relay_rules_file", P_STR, "relay", F(relay_rules_file), 0, 0, NULL,
	  "Relay rules in the manual's effect.dat format (docs/relay.md). Missing or empty: table I for everyone." },
	{ "dnsbl", P_LIST, "", F(dnsbl), 0, 0, NULL,
	  "DNS block list zones (the manual's ORDB). A listed client gets 554 5.7.1 with the list's TXT at the greeting." },
	{ "dnsbl_exempt", P_LIST, "127.0.0.1 ::1", F(dnsbl_exempt), 0, 0, NULL,
	  "Client addresses never looked up in the block lists: addresses, '*' octets, CIDR." },
	{ "dns_servers", P_LIST, "", F(dns_servers), 0, 0, NULL,
	  "Up to 3 DNS servers, IP or IP:port ([IPv6]:port). Empty: /etc/resolv.conf." },
	{ "dns_timeout", P_TIME, "5", F(dns_timeout), 1, 60, NULL,
	  "Seconds per DNS try (two tries)." },
	{ "domains_file", P_STR, "domains", F(domains_file), 0, 0, NULL,
	  "Local domains table (docs/tables.md), relative to the configuration file's folder." },
	{ "accounts_file", P_STR, "accounts", F(accounts_file), 0, 0, NULL,
	  "Accounts table in the manual's tab-separated format with hashed passwords." },
	{ "aliases_file", P_STR, "aliases", F(aliases_file), 0, 0, NULL,
	  "Aliases table: 'alias real[,1|,0]' lines (L4)." },
	{ "mailbox_path", P_STR, "/var/mail/%DOMAIN%/%USERNAME%/Maildir", F(mailbox_path), 0, 0, NULL,
	  "Maildir of an account: %USERNAME%, %DOMAIN% and %HOME% are replaced (L3)." },
	{ "mailbox_size_limit", P_SIZE, "0", F(mailbox_size_limit), 0, LONG_MAX, NULL,
	  "Global mailbox quota in bytes; 0 = unlimited. A per-account or per-domain limit takes precedence." },
	{ "deliver_processes", P_INT, "4", F(deliver_processes), 1, 64, NULL,
	  "Number of local delivery processes working in parallel." },
	{ "delivery_mode", P_ENUM, "direct", F(delivery_mode), 0, 0, delivery_modes,
	  "D4 (seed 002): direct = each domain's MX; smarthost = everything through smarthost; direct_then_smarthost = the smart host when direct delivery fails." },
	{ "smarthost", P_STR, "", F(smarthost), 0, 0, NULL,
	  "Smart host: host[:port], '*' after the port = implicit TLS (e.g. relay.isp.example:465*)." },
	{ "smarthost_is_domain", P_BOOL, "no", F(smarthost_is_domain), 0, 1, NULL,
	  "Take the smart host as a domain and deliver to its MX (the manual's option)." },
	{ "smarthost_auth_user", P_STR, "", F(smarthost_auth_user), 0, 0, NULL,
	  "SMTP AUTH user for the smart host; empty = no AUTH. AUTH forces STARTTLS unless the route is implicit TLS." },
	{ "smarthost_auth_password", P_STR, "", F(smarthost_auth_password), 0, 0, NULL,
	  "SMTP AUTH password for the smart host (keep this file 0640)." },
	{ "smarthost_auth_per_account", P_BOOL, "no", F(smarthost_auth_per_account), 0, 1, NULL,
	  "AUTH to the smart host per sending account (seed 002): mail submitted by an account listed in smarthost_auth_file logs in with that account's credentials; others use smarthost_auth_user." },
	{ "smarthost_auth_file", P_STR, "smarthost_auth", F(smarthost_auth_file), 0, 0, NULL,
	  "Per-account smart-host credentials: 'account user password' lines (docs/routing.md); passwords in clear, keep it 0640." },
	{ "gateway_file", P_STR, "gateways", F(gateway_file), 0, 0, NULL,
	  "Per-domain gateway table: 'domain-pattern,gateway,port[*]' lines (docs/routing.md)." },
	{ "forward_all", P_BOOL, "no", F(forward_all), 0, 1, NULL,
	  "Forward all received mail, local domains included, to forward_gateway (the manual's option)." },
	{ "forward_gateway", P_STR, "", F(forward_gateway), 0, 0, NULL,
	  "Gateway for forward_all: host[:port][*]; empty = the smart host." },
	{ "hosts_file", P_STR, "hosts", F(hosts_file), 0, 0, NULL,
	  "Hosts table that overrides DNS for a domain or host: 'name address[:port]...' lines (seed 004)." },
	{ "relay_domains_file", P_STR, "relaydomains", F(relay_domains_file), 0, 0, NULL,
	  "Relay domains (E1 gateway, E2 backup MX): 'domain [host[:port]] [verify=none|list|probe] [recipients=FILE]' lines. Their mail is accepted from anyone and passed to the host, else to the domain's MX hosts better than us (docs/relay-domains.md)." },
	{ "peers_file", P_STR, "peers", F(peers_file), 0, 0, NULL,
	  "Peer servers (E7): 'domain address[:port]... [probe=vrfy|rcpt]' lines. An unknown user of such a local domain is looked up on the peers at RCPT time and the mail forwarded to the one that has it (docs/peers.md)." },
	{ "self_addresses", P_LIST, "", F(self_addresses), 0, 0, NULL,
	  "Addresses that reach this host besides the listen addresses (NAT, a load balancer): an MX host or a peer with one of them is this host (the backup-MX rule, loop protection)." },
	{ "verify_timeout", P_TIME, "30", F(verify_timeout), 1, 300, NULL,
	  "Seconds a RCPT waits for a recipient probe (relay domains with verify=probe, peer lookups) before it answers 451 4.4.1; other sessions never wait for it." },
	{ "verify_concurrency", P_INT, "20", F(verify_concurrency), 1, 1000, NULL,
	  "Recipient probes in progress at once; more wait their turn (a probe for an address already being probed waits for that one)." },
	{ "verify_cache_size", P_INT, "10000", F(verify_cache_size), 0, 10000000, NULL,
	  "Probe results remembered (least recently used forgotten first); 0 = none. A reload (SIGHUP) forgets them all." },
	{ "verify_positive_ttl", P_TIME, "1h", F(verify_positive_ttl), 0, 365L * 86400, NULL,
	  "Seconds a probe that found the address is remembered." },
	{ "verify_negative_ttl", P_TIME, "10m", F(verify_negative_ttl), 0, 365L * 86400, NULL,
	  "Seconds a probe answered 5xx (no such user) is remembered." },
	{ "verify_tempfail_ttl", P_TIME, "30", F(verify_tempfail_ttl), 0, 86400, NULL,
	  "Seconds a failed probe (4xx, host down, time-out) is remembered, for the address and for a host that could not be reached; 0 = ask again every time." },
	{ "abort_on_rcpt_5xx", P_BOOL, "no", F(abort_on_rcpt_5xx), 0, 1, NULL,
	  "Abort the whole transaction when a RCPT gets 5xx (seed 002)." },
	{ "bounce_on_mx_5xx", P_BOOL, "yes", F(bounce_on_mx_5xx), 0, 1, NULL,
	  "Bounce on a 5xx from an MX; no = try the next MX first (seed 002)." },
	{ "bounce_on_smarthost_5xx", P_BOOL, "yes", F(bounce_on_smarthost_5xx), 0, 1, NULL,
	  "Bounce on a 5xx from the smart host or a gateway; no = keep retrying (seed 002)." },
	{ "delivery_port", P_INT, "25", F(delivery_port), 1, 65535, NULL,
	  "Port for deliveries to MX hosts (the manual's SMTP send port)." },
	{ "smtp_tls", P_ENUM, "opportunistic", F(smtp_tls), 0, 0, smtp_tls_modes,
	  "STARTTLS for outgoing mail: none, opportunistic (when offered), mandatory (or retry later)." },
	{ "smtp_timeout", P_TIME, "300", F(smtp_timeout), 1, 3600, NULL,
	  "Client timeout for each SMTP reply (RFC 5321 4.5.3.2; DATA initiation 2/5 of it, the final dot twice it)." },
	{ "smtp_connect_timeout", P_TIME, "30", F(smtp_connect_timeout), 1, 600, NULL,
	  "Seconds to wait for a TCP connection to a peer." },
	{ "retry_without_waiting", P_BOOL, "no", F(retry_without_waiting), 0, 1, NULL,
	  "The manual's 'retry without waiting': retry failed remote deliveries at once instead of after retry_interval." },
	{ "retry_refused_count", P_INT, "9", F(retry_refused_count), 0, 1000, NULL,
	  "Retries while the peer refuses with 4xx before the bounce (the manual's default 9)." },
	{ "retry_line_period", P_TIME, "8h", F(retry_line_period), 0, 365L * 86400, NULL,
	  "How long to retry when the connection breaks or times out before the bounce (the manual's 8 hours)." },
	{ "retry_noanswer_period", P_TIME, "24h", F(retry_noanswer_period), 0, 365L * 86400, NULL,
	  "How long to retry when no host answers (DNS failures, refused connections) before the bounce (24 hours)." },
	{ "mx_cache_time", P_TIME, "864000", F(mx_cache_time), 0, 365L * 86400, NULL,
	  "MX cache lifetime in seconds (the manual's 864000); 0 = off. Never longer than the records' TTL." },
	{ "bounce_when_no_mx", P_BOOL, "no", F(bounce_when_no_mx), 0, 1, NULL,
	  "Bounce at once when a domain has no MX record instead of falling back to its A/AAAA address." },
	{ "delivery_concurrency", P_INT, "50", F(delivery_concurrency), 1, 10000, NULL,
	  "Remote deliveries in progress at once (the manual's threads; our default 50)." },
	{ "destination_concurrency", P_INT, "20", F(destination_concurrency), 1, 1000, NULL,
	  "Remote deliveries in progress at once to one recipient domain (D1 per-destination limit; Postfix's default_destination_concurrency_limit). Further mail for that domain waits in the queue, without delaying other domains, and goes as soon as one of them ends." },
	{ "smtp_connection_cache_size", P_INT, "32", F(smtp_connection_cache_size), 0, 1000, NULL,
	  "Idle SMTP connections each deliver process keeps open after a successful transaction, for the next message to the same peer (D1 connection reuse); 0 = close every connection after its message." },
	{ "smtp_connection_cache_time", P_TIME, "5", F(smtp_connection_cache_time), 1, 300, NULL,
	  "Seconds an idle cached connection waits for its next message before it is closed with QUIT (Postfix's smtp_connection_cache_time_limit is 2 s); keep it well under the peers' own idle time-out (RFC 5321 4.5.3.2: 5 minutes)." },
	{ "smtp_connection_reuse_limit", P_INT, "100", F(smtp_connection_reuse_limit), 1, 100000, NULL,
	  "Transactions (messages) sent over one connection at most; after that it is closed with QUIT and the next message opens a new one." },
	{ "retry_interval", P_TIME, "120", F(retry_interval), 1, 86400, NULL,
	  "Seconds before a temporarily failed delivery is tried again (the manual's default, 120 s); doubled per attempt up to one hour." },
	{ "queue_lifetime", P_TIME, "5d", F(queue_lifetime), 60, 365L * 86400, NULL,
	  "How long a message may stay queued with temporary failures before it is bounced (5.4.7)." },
	{ "hold_file", P_STR, "hold", F(hold_file), 0, 0, NULL,
	  "Hold table (E3, docs/etrn.md): domains whose mail is kept for a dial-up customer until an ETRN releases it, with who may release it and where it then goes. Missing or empty: nothing is held." },
	{ "hold_lifetime", P_TIME, "30d", F(hold_lifetime), 3600, 365L * 86400, NULL,
	  "How long mail for a held domain waits for its ETRN before it is bounced (5.4.7), instead of queue_lifetime: a month, so a customer away for some weeks still gets it." },
	{ "etrn_clients", P_LIST, "", F(etrn_clients), 0, 0, NULL,
	  "Who may ETRN a held entry that has no allow= list, and who may ETRN a domain that is not held (its waiting mail is then tried at once, 250): IP patterns as in the relay rules, user@domain accounts (authenticated sessions), or * for anyone. Empty: nobody." },
	{ "shutdown_timeout", P_TIME, "30", F(shutdown_timeout), 0, 3600, NULL,
	  "On SIGTERM, seconds to let sessions in the middle of a transaction finish before they are closed." },
	{ "bounce_notice_lines", P_INT, "30", F(bounce_notice_lines), 0, 100000, NULL,
	  "Body lines of the original message returned in a bounce after its headers when the sender did not ask with DSN RET= (0 = headers only)." },
	{ "bounce_size_limit", P_SIZE, "50000", F(bounce_size_limit), 0, 1024L * 1024 * 1024, NULL,
	  "Largest original message returned whole in a bounce (DSN RET=FULL); a larger one is returned as its headers." },
	{ "delay_warning_time", P_TIME, "4h", F(delay_warning_time), 0, 365L * 86400, NULL,
	  "Send the sender one delay warning (a DSN with Action: delayed) when a message has waited this long; 0 = never. Recipients whose DSN NOTIFY leaves out DELAY are not reported." },
	{ "bounce_admin_copy", P_BOOL, "no", F(bounce_admin_copy), 0, 1, NULL,
	  "Send the administrator (postmaster_address) a copy of every bounce, headers only (the manual's 'send error mail to the administrator too')." },
	{ "postmaster_address", P_STR, "", F(postmaster_address), 0, 0, NULL,
	  "The administrator (the manual's administrator account): named in bounces, receives bounces that cannot be delivered and, with bounce_admin_copy, copies of bounces. Empty = postmaster@hostname." },
	/* E4, E5: dial-up operation and pull requests (src/queue/link.c, docs/dialup.md) */
	{ "dialup", P_BOOL, "no", F(dialup), 0, 1, NULL,
	  "E5 dial-up operation: remote (SMTP) deliveries are made only while the link is up (tsubamectl link up|down, or link_check_command). While it is down, remote recipients wait in the queue: no attempt, no retry counting, no expiry, no bounce. When it comes up, every waiting remote recipient is sent at once, then the pull requests (etrn_server) go out. Local deliveries never wait. See docs/dialup.md." },
	{ "link_check_command", P_STR, "", F(link_check_command), 0, 0, NULL,
	  "With dialup: a command whose exit status says whether the link is up (0 = up, anything else = down), run with /bin/sh -c by the queue manager as the mail user every link_check_interval, stdin and output /dev/null, killed after link_check_timeout. A change in its answer brings the link up or down as tsubamectl link up|down does. Empty = only tsubamectl sets the link." },
	{ "link_check_interval", P_TIME, "60", F(link_check_interval), 1, 86400, NULL,
	  "Seconds between two runs of link_check_command." },
	{ "link_check_timeout", P_TIME, "10", F(link_check_timeout), 1, 600, NULL,
	  "Seconds link_check_command may run; then it is killed (with its process group) and the link state stays as it was." },
	{ "link_up_command", P_STR, "", F(link_up_command), 0, 0, NULL,
	  "Command run (as the mail user, /bin/sh -c) each time the dial-up link comes up, after the push and the pull requests: e.g. 'tsubamectl -c /etc/tsubame/tsubamed.conf atrn isp.example:366 site.test' to collect held mail with ATRN (docs/atrn.md). Empty = none." },
	{ "link_up_command_timeout", P_TIME, "10m", F(link_up_command_timeout), 1, 86400, NULL,
	  "Seconds link_up_command may run; then it is killed with its process group." },
	{ "queue_timer", P_TIME, "15m", F(queue_timer), 0, 86400, NULL,
	  "With dialup, while the link is up: how often every waiting remote recipient is tried again (the manual's queue time: keep it shorter than the time the line stays up; its example is 15 minutes for a 20-minute connection). 0 = the retry timers only (retry_interval)." },
	{ "link_hold_open", P_TIME, "20m", F(link_hold_open), 0, 86400, NULL,
	  "With dialup: after the link comes up, how long the line is held open for the ISP to deliver what the pull requests released (Lotus Domino's time to keep the line open; IMail's example connection time is 20 minutes). tsubamectl link wait returns when it is over, and the main log then reports what arrived. 0 = no such window." },
	{ "etrn_server", P_STR, "", F(etrn_server), 0, 0, NULL,
	  "E4 pull requests: the ISP's mail server that holds our mail, host[:port] (port 25 by default; a name is looked up in hosts_file, then DNS). When the link comes up, after our mail was pushed, ETRN (RFC 1985) is sent there for every entry of etrn_domains. Empty = no pull requests." },
	{ "etrn_domains", P_LIST, "", F(etrn_domains), 0, 0, NULL,
	  "What the pull requests ask etrn_server for: a domain (site.example: mail for that host), @domain (the domain and its subdomains) or #queue (a queue name the ISP gave you), separated by spaces or commas." },
	{ "etrn_tls", P_ENUM, "opportunistic", F(etrn_tls), 0, 0, smtp_tls_modes,
	  "STARTTLS for the pull-request session with etrn_server: none; opportunistic (when offered; a failed handshake is retried in plaintext); mandatory (no ETRN without TLS). The certificate is not verified, as for smart hosts." },
};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

static void *field(struct config *c, const struct param *p) { return (char *)c + p->off; }

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int split_list(const char *s, struct strlist *out)
{
	struct strlist l = { NULL, 0 };
	const char *p = s;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		l.v = xreallocarray(l.v, l.n + 1, sizeof(char *));
		l.v[l.n++] = xstrndup(start, (size_t)(p - start));
	}
	strlist_free(out);
	*out = l;
	return 0;
}

static int parse_number(const char *s, enum ptype t, long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -1;
	long long mul = 1;
	if (*end && end[1] == '\0') {
		char u = (char)tolower((unsigned char)*end);
		if (t == P_SIZE && u == 'k') mul = 1024;
		else if (t == P_SIZE && u == 'm') mul = 1024 * 1024;
		else if (t == P_SIZE && u == 'g') mul = 1024LL * 1024 * 1024;
		else if (t == P_TIME && u == 's') mul = 1;
		else if (t == P_TIME && u == 'm') mul = 60;
		else if (t == P_TIME && u == 'h') mul = 3600;
		else if (t == P_TIME && u == 'd') mul = 86400;
		else return -1;
	} else if (*end) {
		return -1;
	}
	if (v > LONG_MAX / mul)
		return -1;
	*out = (long)(v * mul);
	return 0;
}

static int parse_listen(const char *value, struct listen_addr **out, size_t *nout, struct buf *why)
{
	struct strlist items = { NULL, 0 };
	split_list(value, &items);
	struct listen_addr *v = xcalloc(items.n ? items.n : 1, sizeof(*v));
	int bad = 0;
	for (size_t i = 0; i < items.n && !bad; i++) {
		const char *it = items.v[i];
		struct listen_addr *a = &v[i];
		snprintf(a->text, sizeof(a->text), "%s", it);
		const char *colon;
		if (it[0] == '[') {
			const char *close = strchr(it, ']');
			if (!close || close[1] != ':' || (size_t)(close - it - 1) >= sizeof(a->host)) {
				buf_appendf(why, "bad listen address '%s' (want [IPv6]:PORT)", it);
				bad = 1;
				break;
			}
			memcpy(a->host, it + 1, (size_t)(close - it - 1));
			colon = close + 1;
		} else {
			colon = strrchr(it, ':');
			if (!colon || (size_t)(colon - it) >= sizeof(a->host) || colon == it) {
				buf_appendf(why, "bad listen address '%s' (want ADDRESS:PORT)", it);
				bad = 1;
				break;
			}
			memcpy(a->host, it, (size_t)(colon - it));
		}
		const char *port = colon + 1;
		size_t plen = strlen(port);
		if (plen && port[plen - 1] == '*') {
			a->implicit_tls = 1;
			plen--;
		}
		char *end;
		long pn = strtol(port, &end, 10);
		if (plen == 0 || plen >= sizeof(a->port) || end != port + plen || pn < 1 || pn > 65535) {
			buf_appendf(why, "bad port in listen address '%s'", it);
			bad = 1;
			break;
		}
		memcpy(a->port, port, plen);
	}
	size_t count = items.n;
	strlist_free(&items);
	if (bad) {
		free(v);
		return -1;
	}
	free(*out);
	*out = v;
	*nout = count;
	return 0;
}

/* Set one parameter from text; on error, append the reason (no location) to why. */
static int set_param(struct config *c, const struct param *p, const char *value, struct buf *why)
{
	void *f = field(c, p);
	long n;
	switch (p->type) {
	case P_STR:
		free(*(char **)f);
		*(char **)f = xstrdup(value);
		return 0;
	case P_INT:
	case P_SIZE:
	case P_TIME:
		if (parse_number(value, p->type, &n) < 0) {
			buf_appendf(why, "%s: '%s' is not a %s", p->name, value,
			    p->type == P_SIZE ? "size (bytes, k, m, g)" : p->type == P_TIME ? "time (s, m, h, d)" : "number");
			return -1;
		}
		if (n < p->min || n > p->max) {
			buf_appendf(why, "%s: %ld is out of range %ld..%ld", p->name, n, p->min, p->max);
			return -1;
		}
		*(long *)f = n;
		return 0;
	case P_BOOL:
		if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "on"))
			*(int *)f = 1;
		else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "off"))
			*(int *)f = 0;
		else {
			buf_appendf(why, "%s: '%s' is not yes or no", p->name, value);
			return -1;
		}
		return 0;
	case P_ENUM:
		for (int i = 0; p->enums[i]; i++)
			if (!strcasecmp(value, p->enums[i])) {
				*(int *)f = i;
				return 0;
			}
		buf_appendf(why, "%s: '%s' is not one of", p->name, value);
		for (int i = 0; p->enums[i]; i++)
			buf_appendf(why, " %s", p->enums[i]);
		return -1;
	case P_LIST:
		return split_list(value, (struct strlist *)f);
	case P_LISTEN:
		if (parse_listen(value, &c->listen, &c->nlisten, why) < 0)
			return -1;
		if (c->nlisten == 0) {
			buf_appendf(why, "listen: at least one address is needed");
			return -1;
		}
		return 0;
	case P_SUBMISSION:
		return parse_listen(value, &c->submission_listen, &c->nsubmission_listen, why);
	case P_ODMR:
		return parse_listen(value, &c->odmr_listen, &c->nodmr_listen, why);
	case P_AUTH: {
		unsigned mask;
		if (sasl_parse_methods(value, &mask) < 0) {
			buf_appendf(why, "%s: '%s' is not NO or a list of PLAIN LOGIN CRAM-MD5", p->name, value);
			return -1;
		}
		*(unsigned *)f = mask;
		free(c->auth_methods_text);
		c->auth_methods_text = xstrdup(value);
		return 0;
	}
	case P_LEVEL:
		if (parse_number(value, P_INT, &n) < 0 || n < p->min || n > p->max) {
			buf_appendf(why, "%s: '%s' is not 1, 2 or 3", p->name, value);
			return -1;
		}
		*(int *)f = (int)n;
		return 0;
	}
	return -1;
}

static const struct param *find_param(const char *name)
{
	for (size_t i = 0; i < NPARAMS; i++)
		if (!strcmp(params[i].name, name))
			return &params[i];
	return NULL;
}

void config_defaults(struct config *c)
{
	struct buf why;
	memset(c, 0, sizeof(*c));
	buf_init(&why, 4096);
	for (size_t i = 0; i < NPARAMS; i++)
		if (set_param(c, &params[i], params[i].def, &why) < 0)
			panic("bad built-in default for %s: %s", params[i].name, buf_cstr(&why));
	buf_free(&why);
	c->path = xstrdup("");
	c->config_dir = xstrdup(".");
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

static int apply(struct config *c, const char *path, int line, const char *name, const char *value,
    int *seen, struct buf *errors)
{
	const struct param *p = find_param(name);
	if (!p) {
		buf_appendf(errors, "%s:%d: unknown parameter '%s'\n", path, line, name);
		return 1;
	}
	size_t idx = (size_t)(p - params);
	if (seen[idx]) {
		buf_appendf(errors, "%s:%d: '%s' is set a second time (first at line %d)\n", path, line, name, seen[idx]);
		return 1;
	}
	seen[idx] = line;
	struct buf why;
	buf_init(&why, 1024);
	int r = set_param(c, p, value, &why);
	if (r < 0)
		buf_appendf(errors, "%s:%d: %s\n", path, line, buf_cstr(&why));
	buf_free(&why);
	return r < 0;
}

static int finish(struct config *c, const char *path, struct buf *errors)
{
	int problems = 0;
	char host[256];
	if (c->hostname[0] == '\0') {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		free(c->hostname);
		c->hostname = xstrdup(host);
	}
	if (c->node_id[0] == '\0') {
		char id[13];
		size_t o = 0;
		for (const char *p = c->hostname; *p && *p != '.' && o < 12; p++)
			if (isalnum((unsigned char)*p))
				id[o++] = *p;
		if (o == 0)
			id[o++] = 'n';
		id[o] = '\0';
		free(c->node_id);
		c->node_id = xstrdup(id);
	} else {
		size_t n = strlen(c->node_id);
		int ok = n > 0 && n <= 12;
		for (const char *p = c->node_id; *p; p++)
			if (!isalnum((unsigned char)*p))
				ok = 0;
		if (!ok) {
			buf_appendf(errors, "%s: node_id '%s' must be 1 to 12 letters or digits\n", path, c->node_id);
			problems++;
		}
	}
	if (c->work_dir[0] != '/') {
		buf_appendf(errors, "%s: work_dir '%s' must be an absolute path\n", path, c->work_dir);
		problems++;
	}
	if (c->max_message_size > 0 && c->max_message_size < 1024) {
		buf_appendf(errors, "%s: max_message_size %ld is below 1024 bytes\n", path, c->max_message_size);
		problems++;
	}
	int have_tls = c->tls_cert_file[0] && c->tls_key_file[0];
	if ((c->tls_cert_file[0] != 0) != (c->tls_key_file[0] != 0)) {
		buf_appendf(errors, "%s: tls_cert_file and tls_key_file must be set together\n", path);
		problems++;
	}
	for (int k = 0; k < 3; k++) {
		const struct listen_addr *v = k == 2 ? c->odmr_listen : k ? c->submission_listen : c->listen;
		size_t n = k == 2 ? c->nodmr_listen : k ? c->nsubmission_listen : c->nlisten;
		for (size_t i = 0; i < n; i++)
			if (v[i].implicit_tls && !have_tls) {
				buf_appendf(errors, "%s: %s %s: an implicit TLS listener needs tls_cert_file and tls_key_file\n",
				    path, k == 2 ? "odmr_listen" : k ? "submission_listen" : "listen", v[i].text);
				problems++;
			}
	}
	if (c->dnsbl.n > 16) {
		buf_appendf(errors, "%s: dnsbl: at most 16 lists\n", path);
		problems++;
	}
	if (c->dns_servers.n > 3) {
		buf_appendf(errors, "%s: dns_servers: at most 3 servers\n", path);
		problems++;
	}
	problems += etrn_config_check(c, path, errors);
	return problems;
}

int config_load(struct config *c, const char *path, struct buf *errors)
{
	config_defaults(c);
	free(c->path);
	c->path = xstrdup(path);
	free(c->config_dir);
	const char *slash = strrchr(path, '/');
	c->config_dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
	if (c->config_dir[0] == '\0') {
		free(c->config_dir);
		c->config_dir = xstrdup("/");
	}

	FILE *fp = fopen(path, "r");
	if (!fp) {
		buf_appendf(errors, "%s: cannot open: %s\n", path, strerror(errno));
		return 1;
	}
	int seen[NPARAMS];
	memset(seen, 0, sizeof(seen));
	int problems = 0, lineno = 0, start_line = 0;
	char *line = NULL;
	size_t cap = 0;
	struct buf name, value;
	buf_init(&name, 256);
	buf_init(&value, 1 << 20);
	int have = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if ((size_t)n != strlen(line)) {
			buf_appendf(errors, "%s:%d: NUL byte in line\n", path, lineno);
			problems++;
			continue;
		}
		char *t = trim(line);
		if (*t == '\0' || *t == '#')
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			if (!have) {
				buf_appendf(errors, "%s:%d: continuation line without a parameter before it\n", path, lineno);
				problems++;
				continue;
			}
			if (buf_putc(&value, ' ') < 0 || buf_puts(&value, t) < 0) {
				buf_appendf(errors, "%s:%d: value too long\n", path, lineno);
				problems++;
			}
			continue;
		}
		if (have)
			problems += apply(c, path, start_line, buf_cstr(&name), buf_cstr(&value), seen, errors);
		have = 0;
		char *eq = strchr(t, '=');
		if (!eq) {
			buf_appendf(errors, "%s:%d: expected 'name = value'\n", path, lineno);
			problems++;
			continue;
		}
		*eq = '\0';
		char *k = trim(t), *v = trim(eq + 1);
		buf_reset(&name);
		buf_reset(&value);
		if (*k == '\0' || buf_puts(&name, k) < 0 || buf_puts(&value, v) < 0) {
			buf_appendf(errors, "%s:%d: bad parameter name\n", path, lineno);
			problems++;
			continue;
		}
		have = 1;
		start_line = lineno;
	}
	if (have)
		problems += apply(c, path, start_line, buf_cstr(&name), buf_cstr(&value), seen, errors);
	free(line);
	fclose(fp);
	buf_free(&name);
	buf_free(&value);
	problems += finish(c, path, errors);
	return problems;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < NPARAMS; i++) {
		void *f = field(c, &params[i]);
		if (params[i].type == P_STR) {
			free(*(char **)f);
			*(char **)f = NULL;
		} else if (params[i].type == P_LIST) {
			strlist_free((struct strlist *)f);
		}
	}
	free(c->listen);
	c->listen = NULL;
	c->nlisten = 0;
	free(c->submission_listen);
	c->submission_listen = NULL;
	c->nsubmission_listen = 0;
	free(c->odmr_listen);
	c->odmr_listen = NULL;
	c->nodmr_listen = 0;
	free(c->auth_methods_text);
	c->auth_methods_text = NULL;
	free(c->path);
	free(c->config_dir);
	c->path = c->config_dir = NULL;
}

char *config_path(const struct config *c, const char *file)
{
	if (file[0] == '/' || file[0] == '\0')
		return xstrdup(file);
	return xasprintf("%s/%s", c->config_dir, file);
}

static void value_text(const struct config *c, const struct param *p, struct buf *out)
{
	const void *f = (const char *)c + p->off;
	switch (p->type) {
	case P_STR: buf_puts(out, *(char *const *)f ? *(char *const *)f : ""); break;
	case P_INT: case P_SIZE: case P_TIME: buf_appendf(out, "%ld", *(const long *)f); break;
	case P_BOOL: buf_puts(out, *(const int *)f ? "yes" : "no"); break;
	case P_ENUM: buf_puts(out, p->enums[*(const int *)f]); break;
	case P_LIST: {
		const struct strlist *l = f;
		for (size_t i = 0; i < l->n; i++)
			buf_appendf(out, "%s%s", i ? " " : "", l->v[i]);
		break;
	}
	case P_LISTEN:
	case P_SUBMISSION:
	case P_ODMR: {
		const struct listen_addr *v = p->type == P_LISTEN ? c->listen : p->type == P_ODMR ? c->odmr_listen :
		    c->submission_listen;
		size_t n = p->type == P_LISTEN ? c->nlisten : p->type == P_ODMR ? c->nodmr_listen : c->nsubmission_listen;
		for (size_t i = 0; i < n; i++)
			buf_appendf(out, "%s%s", i ? " " : "", v[i].text);
		break;
	}
	case P_AUTH:
		buf_puts(out, c->auth_methods_text ? c->auth_methods_text : "");
		break;
	case P_LEVEL:
		buf_appendf(out, "%d", *(const int *)f);
		break;
	}
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

void config_print(const struct config *c, int fd)
{
	struct buf out;
	buf_init(&out, 1 << 20);
	for (size_t i = 0; i < NPARAMS; i++) {
		buf_appendf(&out, "%s = ", params[i].name);
		value_text(c, &params[i], &out);
		buf_putc(&out, '\n');
	}
	write_all(fd, out.data, out.len);
	buf_free(&out);
}

void config_print_docs(int fd)
{
	static const char *tnames[] = { "string", "number", "size", "time", "yes/no", "choice", "list", "listen list",
		"listen list", "mechanisms", "1, 2 or 3" };
	struct buf out;
	buf_init(&out, 1 << 20);
	buf_puts(&out, "# Configuration reference\n\n"
	    "Generated by `tsubamed -D` from the parameter table in `src/conf/config.c`; do not edit by hand.\n\n"
	    "The main file holds `name = value` lines. `#` starts a comment line; a line that starts with\n"
	    "white space continues the value above it. Sizes take `k`, `m`, `g`; times take `s`, `m`, `h`, `d`.\n"
	    "`tsubamed -n -c FILE` checks a file and its tables and prints every problem as `file:line: message`.\n\n"
	    "| parameter | type | default | meaning |\n|---|---|---|---|\n");
	for (size_t i = 0; i < NPARAMS; i++) {
		const struct param *p = &params[i];
		buf_appendf(&out, "| `%s` | %s | `%s` | %s", p->name, tnames[p->type], p->def[0] ? p->def : "(empty)", p->doc);
		if (p->type == P_ENUM) {
			buf_puts(&out, " Choices:");
			for (int k = 0; p->enums[k]; k++)
				buf_appendf(&out, " `%s`", p->enums[k]);
			buf_puts(&out, ".");
		} else if ((p->type == P_INT || p->type == P_SIZE || p->type == P_TIME) && p->max != LONG_MAX) {
			buf_appendf(&out, " Range %ld..%ld.", p->min, p->max);
		}
		buf_puts(&out, " |\n");
	}
	write_all(fd, out.data, out.len);
	buf_free(&out);
}
