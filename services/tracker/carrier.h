/*
 * carrier: how trackerd speaks to each carrier's tracking API, as pure
 * functions over requests and answers (carrier.c, and one file per carrier
 * in carriers/).
 *
 * An adapter does three things and nothing else: it checks a tracking
 * number's format at registration, it builds the HTTP request for a batch
 * of parcels of one carrier account, and it reads the carrier's answer
 * into one verdict for the call and one result per parcel, each parcel's
 * raw status mapped to a tag and sub-status (status.h) through the
 * carrier's one table. It does no I/O, keeps no state and reads no clock,
 * so every documented answer (../shared/reference/providers.md, section 1)
 * is a unit test; the poller owns the network, the quotas, the spacing,
 * the backoff and PostgreSQL.
 *
 * Verdicts for a call (DESIGN's classes, "Effects outside PostgreSQL"):
 *   OK            the answer was read; results[] holds one entry per
 *                 queried parcel, in query order (a parcel the carrier
 *                 does not know is found = false, not an error).
 *   RETRY         transient: 5xx, a transport failure, HTML or garbage or
 *                 truncated JSON where JSON was due, Nova Poshta
 *                 20000100016 (service unavailable): backoff with jitter.
 *   WAIT          rate limited (429, a carrier's own limit code): again
 *                 after wait_ms (Retry-After when given, else 0: the
 *                 poller's default).
 *   STOP_ACCOUNT  the credentials are refused (401, 403, Nova Poshta
 *                 20000200068/20000200069, Ukrposhta 900908): the account
 *                 is paused until an operator acts, never retried in a
 *                 storm.
 *   BAD_REQUEST   the request itself is wrong (a documented validation
 *                 error): not retried as is, the reason kept; the poller
 *                 retries its parcels one by one to find the bad one.
 * code and reason carry the carrier's own error code and words (or the
 * adapter's, for garbage) on every verdict but OK.
 *
 * Strings in the query and account structs are lent by the caller; what
 * an adapter builds is owned by the request (rt_http_outreq_free), and
 * what it reads is owned by the answer (carrier_answer_free). A built URL
 * or body may carry a credential (DHL's key is a header, Nova Poshta's in
 * the body): log log_url, never the body.
 */
#ifndef TRACKER_CARRIER_H
#define TRACKER_CARRIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rt_buf.h"
#include "rt_http_outreq.h"
#include "status.h"

#define CARRIER_CODE_MAX   32  /* a carrier's error or status code, as text */
#define CARRIER_REASON_MAX 256 /* the carrier's own words, or the adapter's */
#define CARRIER_SUB_MAX    32  /* a sub-status: "Delivered_004" */

/* A carrier account: the credentials retainctl stored for it (`retainctl
 * carrier add`). Which fields a carrier reads is in its adapter's comment;
 * the rest are NULL. */
typedef struct {
    const char *base_url;      /* the API's base (RETAIN_TRACKER_*_API, or the account's
                                  own): tests point it at a fake */
    const char *api_key;       /* Nova Poshta apiKey, Ukrposhta bearer, Meest token, DHL key */
    const char *client_id;     /* UPS OAuth client id */
    const char *client_secret; /* UPS OAuth client secret */
    const char *access_token;  /* UPS: the cached bearer token (carrier_token_*), NULL: none */
    const char *language;      /* the language asked for in answers ("UA", "en"), NULL: default */
} carrier_account_t;

/* One parcel in a batch. */
typedef struct {
    const char *tracking_number; /* as registered (carrier_number_check passed) */
    const char *phone;           /* Nova Poshta: the sender's or recipient's phone, digits
                                    only ("380958860454"), for the full record; NULL: none */
    const char *service;         /* DHL: the service ("express", "parcel-de", ...), so the
                                    same number on another service is not mistaken; NULL */
    const char *trans_id;        /* UPS: transId, unique per request (<= 32 chars) */
} carrier_query_t;

/* A built request: what rt_http_client_submit takes, owned
 * (rt_http_outreq.h builds and frees it). */
typedef rt_http_outreq_t carrier_request_t;

typedef enum {
    CARRIER_OK = 0,
    CARRIER_RETRY,
    CARRIER_WAIT,
    CARRIER_STOP_ACCOUNT,
    CARRIER_BAD_REQUEST,
} carrier_verdict_t;

/* One event of a parcel's history, as the carrier gave it. */
typedef struct {
    char *code;     /* the carrier's status or event code, owned ("" when none) */
    char *text;     /* its description, owned ("" when none) */
    char *location; /* where, owned ("" when unknown) */
    int64_t at_ms;  /* when, unix ms (carrier local times converted), 0: unknown */
} carrier_event_t;

/* What the carrier says of one parcel. */
typedef struct {
    bool found;                       /* the carrier knows it (Nova Poshta code 3, a 404 of a
                                         single-parcel API, an absent entry: false) */
    char *raw_code;                   /* the current status in the carrier's terms, owned: Nova
                                         Poshta StatusCode, Ukrposhta event ("41000/10": the
                                         delivered event with the return reason), Meest
                                         eventCode, DHL statusCode, UPS currentStatus.type */
    char *raw_text;                   /* its words, owned */
    bool mapped;                      /* raw_code is in the carrier's table; false: tag and
                                         sub_status are meaningless (kept raw, counted) */
    tracking_tag_t tag;               /* the normalised tag (when mapped) */
    char sub_status[CARRIER_SUB_MAX]; /* its sub-status, e.g. "Delivered_004" (when mapped) */
    bool returning;                   /* the parcel goes back to the sender */
    char *location;                   /* the last known place, owned ("" when unknown) */
    int64_t status_at_ms;             /* when the current status was stamped, 0: unknown */
    int64_t estimated_ms;             /* the carrier's expected delivery (Nova Poshta
                                         ScheduledDeliveryDate, DHL estimatedTimeOfDelivery, UPS
                                         SDD/RDD), 0: none */
    int64_t delivered_ms;             /* actual delivery (ActualDeliveryDate/RecipientDateTime,
                                         UPS DEL, the delivered event), 0: none */
    int64_t storage_until_ms;         /* Nova Poshta DatePayedKeeping: free storage ends, 0: none */
    char *origin_city;                /* lane: where it left from, owned ("" when unknown) */
    char *destination_city;           /* lane: where it goes, owned ("" when unknown) */
    char *cod_state;                  /* Nova Poshta's cash-on-delivery transfer state
                                         (LastTransactionStatusGM), owned ("" when none) */
    carrier_event_t *events;          /* the history the answer carried, oldest first, owned */
    size_t n_events;                  /* entries in events (Nova Poshta and Ukrposhta's last
                                         status: 0; the current status is raw_code) */
} carrier_result_t;

/* What one call came to. */
typedef struct {
    carrier_verdict_t verdict;       /* the class */
    char code[CARRIER_CODE_MAX];     /* not OK: the carrier's error code ("" when none) */
    char reason[CARRIER_REASON_MAX]; /* not OK: why, in the carrier's words or the adapter's */
    int64_t wait_ms;                 /* WAIT: the carrier's delay, 0: the poller's default */
    carrier_result_t *results;       /* OK: one per queried parcel, in query order, owned */
    size_t n_results;                /* entries in results (OK: the query's count) */
} carrier_answer_t;

/* One entry of a carrier's mapping table: a documented code and what it
 * means. The tables are the only place codes are named; the test that
 * every documented code is mapped reads them. */
typedef struct {
    const char *code;       /* the carrier's code, as text ("101", "41000", "transit", "D") */
    tracking_tag_t tag;     /* its tag */
    const char *sub_status; /* its sub-status ("InTransit_001") */
    bool returning;         /* the parcel goes back to the sender */
    const char *meaning;    /* what the carrier documents it as, for logs and the README */
} carrier_code_t;

/* A carrier: its name, limits and adapter. */
typedef struct {
    const char *name;            /* "nova_poshta", "ukrposhta", "meest", "dhl", "ups": the code
                                    in OrderShipped.carrier and `retainctl carrier add` */
    const char *display;         /* "Nova Poshta" */
    const char *api_env;         /* its base-URL variable, "RETAIN_TRACKER_NOVAPOSHTA_API" */
    const char *api_default;     /* the production base URL */
    size_t batch_max;            /* parcels per call at most (Nova Poshta 100, Ukrposhta 100,
                                    Meest, DHL, UPS 1) */
    bool needs_token;            /* UPS: an OAuth token before any tracking call */
    int64_t min_interval_ms;     /* documented spacing of calls (DHL's 1 call/s), 0: none;
                                    a new account's default (`retainctl carrier add`) */
    int daily_quota;             /* documented calls a UTC day of the entry tier (DHL 250),
                                    0: none; a new account's default */
    int per_parcel_day;          /* fetches of one parcel a day the carrier asks at most
                                    (DHL 10), 0: none; a new account's default */
    const carrier_code_t *codes; /* its mapping table */
    size_t n_codes;              /* entries in codes */

    /* 0 when `number` is a well-formed tracking number for this carrier;
     * -1 with the reason ("Nova Poshta numbers are 14 digits starting with
     * 1, 2 or 5") in why. */
    int (*number_check) (const char *number, char *why, size_t whylen);

    /* Builds the tracking request for queries[0..n) (1 <= n <= batch_max)
     * into *out; -1 with err filled when it cannot (a credential missing). */
    int (*build) (const carrier_account_t *account, const carrier_query_t *queries, size_t n,
                  carrier_request_t *out, char *err, size_t errlen);

    /* Reads the answer to a request built for queries[0..n): status is the
     * HTTP status (0 when none came: a transport failure, which is RETRY),
     * retry_after_ms the Retry-After header's figure (-1 when absent),
     * body/len what came (may be truncated, HTML, anything). Always fills
     * *out (never fails): garbage is a verdict too. */
    void (*parse) (const carrier_query_t *queries, size_t n, int status, int64_t retry_after_ms,
                   const char *body, size_t len, carrier_answer_t *out);

    /* needs_token only: the OAuth token request, and reading its answer
     * into token (owned by the caller, freed with free) and *expires_ms
     * (its lifetime in ms). parse_token fills *out's verdict as parse
     * does (STOP_ACCOUNT on refused credentials) and returns 0 on OK. */
    int (*build_token) (const carrier_account_t *account, carrier_request_t *out, char *err,
                        size_t errlen);
    int (*parse_token) (int status, int64_t retry_after_ms, const char *body, size_t len,
                        char **token, int64_t *expires_ms, carrier_answer_t *out);
} carrier_t;

/* Every carrier trackerd knows, NULL-terminated: the one list. */
extern const carrier_t *const carrier_all[];

/* The carrier named `name`, NULL when none is (the caller names the
 * unknown carrier in its refusal). */
const carrier_t *carrier_find (const char *name);

/* The entry of `carrier`'s table for `code`, NULL when the code is not
 * documented (kept raw, counted, logged by the caller). */
const carrier_code_t *carrier_code_find (const carrier_t *carrier, const char *code);

/* Fills result's tag, sub_status, returning and mapped from `carrier`'s
 * table for result->raw_code (mapped = false when absent). Adapters call
 * it; it is here so the rule is in one place. */
void carrier_result_map (const carrier_t *carrier, carrier_result_t *result);

/* The verdict's name ("ok", "retry", "wait", "stop_account", "bad_request"). */
const char *carrier_verdict_name (carrier_verdict_t verdict);

/* Frees what an answer owns and zeroes it; safe twice. */
void carrier_answer_free (carrier_answer_t *answer);

/* --- for the adapters (the files of carriers/); pure, as they are --- */

/* Refuses, into err, an account whose base_url is missing or not
 * http(s)://; *len gets its length without a trailing '/', for "%.*s".
 * `carrier` names the carrier in the message. 0 or -1. */
int carrier_check_base (const carrier_t *carrier, const carrier_account_t *account, int *len,
                        char *err, size_t errlen);

/* Refuses, into err, a missing or empty credential (named `what`) or one
 * holding a control character (it goes into a header line). 0 or -1. */
int carrier_check_secret (const carrier_t *carrier, const char *what, const char *value, char *err,
                          size_t errlen);

/* Sets out's verdict, code (NULL: "") and printf-style reason. */
void carrier_set (carrier_answer_t *out, carrier_verdict_t verdict, const char *code,
                  const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

/* The statuses no carrier's body changes: none (0, a transport failure),
 * 5xx, 1xx and 3xx are RETRY, 429 is WAIT for retry_after_ms (0 when
 * absent). True when out is set so; false (2xx, 4xx) for the adapter to
 * read the answer. */
bool carrier_http_failed (int status, int64_t retry_after_ms, carrier_answer_t *out);

/* The body parsed as JSON (owned), or NULL with out set to RETRY "not
 * JSON: ..." naming the parser's complaint, the status and the body's
 * first printable bytes (an HTML error page, a truncated answer). */
json_t *carrier_json (int status, const char *body, size_t len, carrier_answer_t *out);

/* Sets out to RETRY for JSON of a shape the carrier does not document:
 * "unexpected JSON: <what> (HTTP <status>)". */
void carrier_unexpected (carrier_answer_t *out, int status, const char *what);

/* Gives out n results (OK), each not found with every string ""; -1 with
 * out RETRY when out of memory. */
int carrier_results_new (carrier_answer_t *out, size_t n);

/* Gives r n events with every string ""; -1 when out of memory. */
int carrier_events_new (carrier_result_t *r, size_t n);

/* Replaces the owned string *field by a copy of value (NULL: ""). Out of
 * memory leaves NULL, which carrier_answer_settle catches. */
void carrier_str_set (char **field, const char *value);

/* The last word on a parsed answer: a result string left NULL (out of
 * memory) turns the whole answer into RETRY, so a caller never meets a
 * NULL; a verdict other than OK carries no results. */
void carrier_answer_settle (carrier_answer_t *out);

/* v as text: a string as it is, a whole number in decimal (a code some
 * carriers send as a number), "" for anything else (NULL included); lent
 * by v or buf (buf may be NULL: numbers are then ""). */
const char *carrier_json_as_text (const json_t *v, char *buf, size_t buflen);

/* carrier_json_as_text of obj[key] ("" when obj is not an object). */
const char *carrier_json_text (const json_t *obj, const char *key, char *buf, size_t buflen);

/* The instant a wall-clock time in Kyiv (Europe/Kyiv) names, by rt_tz's
 * rule for skipped and repeated times, into *unix_ms. 0, or -1 for a field
 * out of range. Thread-safe; the zone and a table of its offsets per month
 * are made once per process and never change after. */
int carrier_kyiv_to_unix (int year, int month, int day, int hour, int minute, int second,
                          int64_t *unix_ms);

/* A Kyiv wall-clock time as Ukrainian carriers write it, in unix ms:
 * "2026-07-01 14:30:00" (or with 'T'), "01-07-2026 14:30:00",
 * "01.07.2026 14:30:00", "14:30 01.07.2026", seconds optional, or a date
 * alone (its midnight). 0 for anything else, and for years before 1971
 * (Nova Poshta's "0001-01-01 00:00:00" is no date). */
int64_t carrier_kyiv_ms (const char *text);

/* An ISO 8601 date-time in unix ms: "2026-07-01T14:30:00+02:00", "...Z",
 * fractions of a second, or a date alone; without a zone it is read as
 * UTC. 0 for anything else. */
int64_t carrier_iso_ms (const char *text);

#endif
