/*
 * hold_route: where the released mail of a held domain goes (SPEC E3, RFC
 * 1985: "the server host ... start[s] a new SMTP session to the client",
 * never down the ETRN session, never back to us; docs/etrn.md).
 *
 * Precedence for a held domain, most specific first:
 *   1. the hold table's route=HOST[:PORT];
 *   2. a gateway table entry for the domain (the administrator's word);
 *   3. the domain's MX, with the hosts table in front of DNS (seed 004: the
 *      customer's address written there, since its MX points at us).
 * Never the smart host nor the forward-all gateway: they are not the customer.
 * Pure logic, like route.c; remote.c drops every target that is this server
 * (hold_is_self) and defers when nothing else is left.
 */
#ifndef TSUBAME_HOLD_ROUTE_H
#define TSUBAME_HOLD_ROUTE_H

#include "deliver/route.h"
#include "policy/holdtab.h"

/* Replace *plan with the route of domain, held by entry e.  The plan points into e and c's tables. */
void hold_route_plan(const struct route_config *c, const struct hold_entry *e, const char *domain,
    struct route_plan *plan);

#endif
