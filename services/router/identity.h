/*
 * identity: who a customer is, across every channel (schema crm).
 *
 * routerd resolves every InboundMessage, CustomerUpserted and OrderPlaced
 * to one customer, merges two customers an operator finds to be one person,
 * undoes such a merge, and records operators' edits of the card. Every
 * function runs on the caller's connection inside the caller's open
 * transaction (routerd's consumer handler runs one per round), so what it
 * writes, and the events it puts in the outbox, commit with the round or
 * not at all. The outbox's statement must be prepared on db
 * (rt_outbox_prepare) and identity_prepare called once per handle.
 *
 * Resolution, in this order; the first rule that finds a customer decides:
 *   0. a retain customer id the event already names (ingest knows them);
 *   1. a known channel identity (channel, inbox, external user id);
 *   2. the shop's customer id;
 *   3. a proven contact point: a phone proven by a message from it (SMS,
 *      WhatsApp), a call from it or a Telegram contact share; an e-mail
 *      proven by a mail from it. A proven point that no customer has proven
 *      yet is also matched to the customer holding it from the shop
 *      (proven_by 'shop'), when exactly one does. A shop's point (an
 *      order's phone) is matched to the customer who proved it, unless that
 *      customer has another shop id;
 *   4. otherwise a new customer.
 * A merged customer found by any rule resolves to its survivor.
 *
 * In plain words: a number the shop has on an order is the shop's claim,
 * not a proof, and a number typed into a message is only somebody's claim.
 * A claim never joins two customers. But a claim and a proof of the same
 * number are one person: the customer who ordered by phone is the one who
 * then writes from that number on WhatsApp (the WhatsApp message proves the
 * number and finds the order's customer by the shop's point), and from then
 * on the number is proven, so a Telegram contact share of it lands there
 * too. A number typed in Instagram that another customer holds makes a
 * merge suggestion for the operator, never a merge. Two customers holding
 * the same phone or e-mail, however each got it, make a suggestion, unless
 * they carry two different shop ids (which can never be merged) or an
 * operator rejected that pair before.
 *
 * Concurrency: the identity's primary key and the unique index on proven
 * points are the claims. A new customer's identity and proven points are
 * claimed with INSERT ... ON CONFLICT before its row is written; a replica
 * that meets another's uncommitted claim waits for it and then takes that
 * customer, so two replicas resolving one person at once end with one
 * customer. Giving an existing customer a shop id takes a transaction
 * advisory lock on that id (an UPDATE cannot say ON CONFLICT). A shop's
 * point and a proof of the same number arriving in the same instant on two
 * replicas can make two customers; the next message or order holding that
 * number then makes the suggestion.
 *
 * Merges move the absorbed customer's identities, contact points and shop
 * id to the survivor and record exactly what moved (crm.merges.moved), so
 * an undo puts back that and no more. Conversations and timelines are
 * routerd's conversation side: it hooks in through identity_hooks_t, adds
 * what it moves under keys of its own in the same record, and gets that
 * record back on undo.
 *
 * Errors: functions return IDENTITY_OK (0) or a negative identity_status_t
 * with the reason in err. A refusal (any status but IDENTITY_ERR_DB) is
 * decided before anything is written, so the caller's transaction is as it
 * was; after IDENTITY_ERR_DB the caller rolls back.
 */
#ifndef ROUTER_IDENTITY_H
#define ROUTER_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "rt_db.h"
#include "rt_migrate.h"
#include "rt_uuid.h"
#include "retain/v1/common.pb-c.h"

#define IDENTITY_ID_LEN          RT_UUID_STR_LEN /* a customer's, merge's or suggestion's id */
#define IDENTITY_MAX_POINTS      8               /* contact points per resolution */
#define IDENTITY_MAX_SUGGESTIONS 8               /* suggestions reported per resolution */

/* What a call came to; the API maps each to its HTTP status. */
typedef enum {
    IDENTITY_OK = 0,
    IDENTITY_ERR_DB = -1,        /* PostgreSQL failed: roll back (500/503) */
    IDENTITY_ERR_INVALID = -2,   /* input refused: a bad id, phone, date, zone (422) */
    IDENTITY_ERR_NOT_FOUND = -3, /* no such customer or merge (404) */
    IDENTITY_ERR_SHOP_IDS = -4,  /* a merge of two different shop ids (422) */
    IDENTITY_ERR_SAME = -5,      /* a customer merged with itself (422) */
    IDENTITY_ERR_MERGED = -6,    /* the customer was merged into another (409) */
    IDENTITY_ERR_UNDONE = -7,    /* the merge was undone already (409) */
    IDENTITY_ERR_DEPENDS = -8,   /* a later merge depends on this one (409) */
    IDENTITY_ERR_RESOLVED = -9,  /* the suggestion was merged already (409) */
} identity_status_t;

/* Where a contact point came from. The proving sources make a proven
 * point; the others a claim. */
typedef enum {
    IDENTITY_SOURCE_TEXT = 0,         /* typed in a message's text (also: unknown) */
    IDENTITY_SOURCE_FORM,             /* given in a form (web chat, CSAT) */
    IDENTITY_SOURCE_SHOP,             /* the shop's record of its buyer (OrderPlaced) */
    IDENTITY_SOURCE_SMS,              /* an SMS from that number: proves a phone */
    IDENTITY_SOURCE_WHATSAPP,         /* a WhatsApp message from that number: proves a phone */
    IDENTITY_SOURCE_CALL,             /* a call from that number: proves a phone */
    IDENTITY_SOURCE_TELEGRAM_CONTACT, /* the user shared their own Telegram contact: proves a phone
                                       */
    IDENTITY_SOURCE_EMAIL_INBOUND,    /* a mail from that address: proves an e-mail */
} identity_source_t;

typedef enum {
    IDENTITY_POINT_PHONE = 0, /* normalised to E.164 (rt_phone) */
    IDENTITY_POINT_EMAIL,     /* trimmed and lower-cased */
} identity_point_kind_t;

/* One phone or e-mail the event carries. */
typedef struct {
    identity_point_kind_t kind; /* phone or e-mail */
    const char *value;          /* as received; normalised here */
    identity_source_t source;   /* decides whether it is proven */
    const char *seen_in;        /* for the suggestion's evidence: "instagram message <id>";
                                   NULL for none */
} identity_point_t;

/* What an event says about its customer. Strings are lent; NULL or "" for
 * absent. At least one of customer_id, the identity, shop_customer_id or a
 * point must be there. */
typedef struct {
    const char *customer_id;                      /* a retain customer id the event names */
    Retain__V1__Channel channel;                  /* CHANNEL_UNSPECIFIED: no channel identity */
    const char *inbox;                            /* the identity's inbox */
    const char *external_user_id;                 /* the identity's user id on the channel */
    const char *shop_customer_id;                 /* the shop's own id of the customer */
    identity_point_t points[IDENTITY_MAX_POINTS]; /* phones and e-mails */
    size_t npoints;                               /* used entries of points */
    const char *default_country; /* ISO 3166 code national phone numbers are read in;
                                    NULL: "UA" (rt_phone_normalize) */
    const char *name;            /* fills the customer's name when it is empty */
    const char *locale;          /* fills the customer's locale when it is empty */
} identity_input_t;

/* Which rule found the customer. */
typedef enum {
    IDENTITY_BY_CUSTOMER_ID = 0, /* the id the event named */
    IDENTITY_BY_IDENTITY,        /* a known channel identity */
    IDENTITY_BY_SHOP_ID,         /* the shop's customer id */
    IDENTITY_BY_PROVEN_POINT,    /* a proven phone or e-mail */
    IDENTITY_BY_SHOP_POINT,      /* a proof matched to the shop's point, or the reverse */
    IDENTITY_BY_NEW,             /* nobody: a new customer */
} identity_rule_t;

/* What a resolution came to. */
typedef struct {
    char customer_id[IDENTITY_ID_LEN + 1]; /* the customer (a survivor, never a merged one) */
    bool is_new;                           /* created by this call */
    bool followed_merge;  /* the rule found a merged customer; customer_id is its survivor */
    identity_rule_t rule; /* which rule decided */
    char suggestions[IDENTITY_MAX_SUGGESTIONS][IDENTITY_ID_LEN + 1]; /* suggestions created */
    size_t nsuggestions;   /* used entries of suggestions (more may have been created) */
    size_t points_refused; /* points whose value did not normalise (skipped) */
} identity_result_t;

/* routerd's conversation side, called inside the merge's transaction.
 * on_merge may add what it moves to `moved` (an object; keep to keys of
 * your own: "identities", "points" and "shop_customer_id" are taken) and
 * on_unmerge gets the same object back. Each returns 0, or -1 with err
 * filled, which fails the call with IDENTITY_ERR_DB. */
typedef struct {
    int (*on_merge) (rt_db_t *db, const char *survivor, const char *absorbed, json_t *moved,
                     void *arg, char *err, size_t errlen);
    int (*on_unmerge) (rt_db_t *db, const char *survivor, const char *absorbed, const json_t *moved,
                       void *arg, char *err, size_t errlen);
    void *arg; /* passed to both */
} identity_hooks_t;

/* An operator's edit of the card: each field changes when its pointer is
 * not NULL ("" clears it; for manager too). */
typedef struct {
    const char *name;
    const char *birthday;          /* YYYY-MM-DD */
    const char *locale;            /* BCP 47 */
    const char *time_zone;         /* an IANA zone ICU knows */
    const char *preferred_channel; /* a channel name (rt_channel) */
    const char *notes;
    const char *manager; /* an operator id */
} identity_profile_t;

/* crm's migrations (generated from services/router/sql); routerd applies
 * them at start (rt_migrate_apply), after the outbox's. */
extern const rt_migration_set_t rt_migrations_crm;

/* Registers crm's statements with db (prepared on this and every later
 * connection). Once per handle. 0, or -1 with the reason in err. */
int identity_prepare (rt_db_t *db, char *err, size_t errlen);

/* Resolves an event's customer by the rules above, creating the customer,
 * attaching the identity, shop id and points, and recording suggestions.
 * Points that do not normalise are skipped and counted. */
identity_status_t identity_resolve (rt_db_t *db, const identity_input_t *in, identity_result_t *out,
                                    char *err, size_t errlen);

/* The known part of identity_resolve for many events at once: an event
 * that names a channel identity and nothing else to attach (no customer
 * id, shop id or locale; no point but a phone and an e-mail the channel
 * proves, each already proven as that customer's and nobody else's) is
 * resolved here when that identity exists and the event's name, if any,
 * would fill nothing (the customer has one): found[i] true, out[i] as identity_resolve would fill
 * it (the survivor, rule IDENTITY_BY_IDENTITY), and the identity's last_seen moved. Every other
 * event gets found[i] false and goes to identity_resolve, in its order (what it may create cannot
 * change what was found here: an identity, once a customer's, moves only by a merge). 0, or -1 with
 * err filled (PostgreSQL failed). */
int identity_seen_batch (rt_db_t *db, const identity_input_t *in, size_t n, identity_result_t *out,
                         bool *found, char *err, size_t errlen);

/* Merges absorbed into survivor (both ids): moves the identities, contact
 * points and shop id, records the merge (by: an operator id, NULL when
 * retain merges; evidence: a JSON object's text, NULL for {}), resolves the
 * pair's open suggestions as merged, sets merged_into and puts
 * CustomerMerged in the outbox. merge_id (IDENTITY_ID_LEN + 1) gets the
 * merge's id. hooks may be NULL. Refuses a customer with itself, a customer
 * already merged, two different shop ids. */
identity_status_t identity_merge (rt_db_t *db, const char *survivor, const char *absorbed,
                                  const char *by, const char *reason, const char *evidence,
                                  const identity_hooks_t *hooks, char *merge_id, char *err,
                                  size_t errlen);

/* Undoes a merge: what it moved and is still on the survivor goes back to
 * the absorbed customer, merged_into is cleared, the merge marked undone
 * (by: the operator) and CustomerUnmerged put in the outbox. Refuses a
 * merge undone already, and one whose survivor was merged since (err names
 * that merge, to undo first). */
identity_status_t identity_unmerge (rt_db_t *db, const char *merge_id, const char *by,
                                    const identity_hooks_t *hooks, char *err, size_t errlen);

/* Applies an operator's edit (by: the operator) and puts the whole card in
 * the outbox as CustomerUpserted, so loyaltyd learns a birthday typed into
 * it. Refuses a merged customer (edit the survivor) and invalid values. */
identity_status_t identity_update_profile (rt_db_t *db, const char *customer_id,
                                           const identity_profile_t *changes, const char *by,
                                           char *err, size_t errlen);

/* Marks an open merge suggestion rejected by an operator (by): the pair
 * is not suggested again (identity_resolve skips rejected pairs).
 * Rejecting a rejected one changes nothing (IDENTITY_OK); one that was
 * merged is IDENTITY_ERR_RESOLVED; IDENTITY_ERR_NOT_FOUND for none. */
identity_status_t identity_suggestion_reject (rt_db_t *db, const char *suggestion_id,
                                              const char *by, char *err, size_t errlen);

/* Marks the suggestion an operator accepted (by) as merged, before the
 * merge of survivor and absorbed in the same transaction (identity_merge
 * resolves the pair's other open suggestions itself). It must be about
 * those two customers, as they stand now, either way round
 * (IDENTITY_ERR_INVALID otherwise); a rejected one may still be accepted.
 * IDENTITY_ERR_NOT_FOUND for none. */
identity_status_t identity_suggestion_accept (rt_db_t *db, const char *suggestion_id,
                                              const char *survivor, const char *absorbed,
                                              const char *by, char *err, size_t errlen);

/* Normalises a phone (E.164 through rt_phone, national numbers read in
 * default_country, NULL: "UA") or an e-mail (trimmed, ASCII lower-cased)
 * into out (at least 256 bytes) as resolution stores it, so a search
 * finds what resolution kept. 0, or -1 with why filled. */
int identity_point_normalize (identity_point_kind_t kind, const char *value,
                              const char *default_country, char *out, size_t outlen, char *why,
                              size_t whylen);

/* The proven_by text a source is stored with ("sms", "shop", ...). */
const char *identity_source_name (identity_source_t source);

/* Whether a source proves a point of that kind (SMS proves a phone, never
 * an e-mail). */
bool identity_source_proves (identity_source_t source, identity_point_kind_t kind);

#endif
