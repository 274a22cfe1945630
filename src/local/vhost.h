/*
 * vhost: virtual hosts (L1, seed 004) — the local domains as seen from the local
 * address a client connected to.
 *
 * A domain with ip= in the domains table is "a virtual host with its own IP
 * address": smtpd serves it only on connections made to one of those addresses,
 * greets there with its hostname=, and a bare user name (VRFY, AUTH, <Postmaster>)
 * means a user of that domain.  A domain without ip= is "a virtual host without an
 * IP address": served on every address; its users log in as user@domain.
 * Delivery, the queue and bounces never look at addresses: only smtpd asks here.
 *
 * The lookups are linear in the number of domains, as domains_find() is.
 */
#ifndef TSUBAME_VHOST_H
#define TSUBAME_VHOST_H

#include "conf/config.h"
#include "local/domains.h"
#include "local/resolve.h"
#include "util/buf.h"

/* 1 when d is served on a connection to local_addr (numeric): it has no ip=, or local_addr is one of them. */
int vhost_serves(const struct domain *d, const char *local_addr);

/* 0 when name is a local domain or host alias bound to other addresses than local_addr; else 1. */
int vhost_domain_served(const struct domain_table *t, const char *name, const char *local_addr);

/*
 * The domain a bare user name means on local_addr: the first domain (file order)
 * bound to local_addr, else the first domain without ip=; NULL when there is none.
 */
const struct domain *vhost_default_domain(const struct domain_table *t, const char *local_addr);

/* The greeting and EHLO name on local_addr: hostname= of a domain bound to it, else fallback. */
const char *vhost_hostname(const struct domain_table *t, const char *local_addr, const char *fallback);

/*
 * `tsubamed -n` checks across the configuration and the tables, as
 * "file:line: message" lines; returns their count:
 *  - an ip= address that no listener (listen, submission_listen) covers, or that
 *    is in hidden_ips: the domain could never receive mail;
 *  - an alias written with a host alias (info@mail.example.test): host aliases are
 *    mapped to their domain before the aliases table is read, so it never matches;
 *  - an account whose domain is a host alias or not in the domains table;
 *  - two accounts that mailbox_path gives one Maildir (demo@ of two domains
 *    without %DOMAIN% in it: seed 004's warning about a shared top directory).
 */
int vhost_check(const struct config *c, const struct local_tables *t, struct buf *errors);

#endif
