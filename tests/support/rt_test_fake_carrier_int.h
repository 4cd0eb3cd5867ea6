/*
 * rt_test_fake_carrier_int: what the fake carrier's files share.
 *
 *   rt_test_fake_carrier.c         the machinery: the server, a request's
 *                                  pipeline (script, credentials, limits,
 *                                  form, state), records, delays, UPS
 *                                  tokens, the test's reads
 *   rt_test_fake_carrier_states.c  the parcels' table and the setters,
 *                                  which format each state once into the
 *                                  strings its carrier sends
 *   rt_test_fake_carrier_read.c    what each carrier's request asks
 *   rt_test_fake_carrier_shapes.c  each carrier's answers
 *
 * Everything here but fc_read, fc_ask_free, fc_alloc, fc_dup and fc_die
 * runs with the fake's lock held.
 */
#ifndef RT_TEST_FAKE_CARRIER_INT_H
#define RT_TEST_FAKE_CARRIER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_buf.h"
#include "rt_http_server.h"
#include "rt_test_fake_carrier.h"
#include "rt_tz.h"

#define FC_FIELDS_MAX   20 /* formatted fields of one state, at most */
#define FC_SERVICES_MAX 16 /* DHL services the fake tells apart */
#define FC_ZONES_MAX    16 /* UPS activity zones the fake keeps open */

/* One state, formatted, immutable once made; parcels share it by count. */
typedef struct {
    int refs;                     /* histories holding it */
    int64_t at_ms;                /* when it happened (unix ms) */
    const char *f[FC_FIELDS_MAX]; /* the carrier's fields (carrier-specific
                                     indices in the shapes file), in this
                                     allocation */
} fc_state_t;

/* One parcel: a number (and DHL service) and its history. */
typedef struct fc_parcel_t {
    rt_fc_carrier_t carrier;  /* whose */
    char *number;             /* the tracking number, owned */
    char *service;            /* DHL: its service, owned ("" for the others) */
    uint64_t hash;            /* of carrier, number and service */
    fc_state_t **history;     /* oldest first, each held */
    size_t n;                 /* states in history */
    size_t cap;               /* room in history */
    size_t fetches;           /* stateful answers in day `day` */
    uint64_t day;             /* the fake's day generation fetches count in */
    struct fc_parcel_t *next; /* the bucket's chain */
} fc_parcel_t;

/* A queued scripted answer, copied. */
typedef struct fc_script_t {
    rt_fc_answer_t answer;    /* as pushed, its strings below */
    char *error;              /* owned copy */
    char *content_type;       /* owned copy */
    char *body;               /* owned copy */
    struct fc_script_t *next; /* the queue */
} fc_script_t;

/* One account: a key the carrier accepts and its limits' counts. */
typedef struct {
    char *key;        /* apiKey, bearer, token, DHL key, UPS client id; owned */
    char *secret;     /* UPS client secret, owned (NULL for the others) */
    int64_t last_us;  /* arrival of its last accepted call, 0: none */
    size_t day_calls; /* accepted calls in day `day` */
    uint64_t day;     /* the day generation day_calls count in */
} fc_account_t;

/* A UPS token handed out. */
typedef struct {
    char token[48];     /* the access_token */
    char *client_id;    /* whose, owned */
    int64_t expires_ms; /* on the fake's clock */
    bool revoked;       /* by the test */
} fc_token_t;

/* One carrier's side of the fake. */
typedef struct {
    fc_script_t *script;       /* tracking requests' queue */
    fc_script_t **tail;        /* where its next push goes */
    fc_script_t *oauth_script; /* UPS token requests' queue */
    fc_script_t **oauth_tail;  /* where its next push goes */
    fc_account_t *accounts;    /* known accounts */
    size_t naccounts;          /* entries in accounts */
    size_t cap_accounts;       /* room in accounts */
    bool configured;           /* the test added accounts: only those are accepted */
    rt_fc_limits_t limits;     /* per account */
    rt_fc_stats_t stats;       /* counts */
    rt_fc_call_t *calls;       /* records, in arrival order */
    size_t ncalls;             /* entries in calls */
    size_t cap_calls;          /* room in calls */
} fc_carrier_t;

struct rt_fake_carrier_t {
    rt_http_server_t *server;              /* the fake's server */
    char base[64];                         /* "http://127.0.0.1:<port>" */
    char api[RT_FC_CARRIERS][128];         /* each carrier's base for trackerd */
    rt_tz_t *kyiv;                         /* Europe/Kyiv, for NP, Ukrposhta, Meest */
    pthread_mutex_t lock;                  /* guards everything below */
    pthread_cond_t recorded;               /* signalled at each record */
    fc_carrier_t carriers[RT_FC_CARRIERS]; /* each carrier's side */
    fc_parcel_t **buckets;                 /* the parcels' hash table */
    size_t nbuckets;                       /* a power of two */
    size_t nparcels;                       /* parcels in it */
    char *services[FC_SERVICES_MAX];       /* DHL services seen, in order, owned */
    size_t nservices;                      /* entries in services */
    char *zone_names[FC_ZONES_MAX];        /* UPS zones opened, owned */
    rt_tz_t *zones[FC_ZONES_MAX];          /* the zones themselves */
    size_t nzones;                         /* entries in both */
    fc_token_t *tokens;                    /* UPS tokens issued, in order */
    size_t ntokens;                        /* entries in tokens */
    size_t cap_tokens;                     /* room in tokens */
    int64_t token_life_s;                  /* expires_in of the next token */
    uint64_t token_seq;                    /* tokens made, for their text */
    rt_fc_clock_fn clock;                  /* the wall clock, NULL: rt_clock_now_ms */
    void *clock_arg;                       /* passed to clock */
    int64_t utc_day;                       /* the UTC day the clock last showed */
    uint64_t day;                          /* day generation: bumps at each new day */
    struct rt_test_later_t *later;         /* the answers given late */
};

/* What a request asks, read from it before the lock is taken. */
typedef struct {
    bool oauth;           /* UPS: a token request */
    char *key;            /* the credential it carries (owned), NULL: none */
    char *secret;         /* UPS token request: the client secret (owned) */
    char **numbers;       /* the parcels asked for, owned (each owned) */
    char **phones;        /* Nova Poshta: each document's Phone, owned, NULL entries */
    size_t n;             /* entries in numbers (and phones) */
    char *service;        /* DHL: the service asked for, owned, NULL: any */
    bool all_events;      /* Ukrposhta GET /statuses: every event of one barcode */
    bool single;          /* Ukrposhta GET /statuses/last: one object, not an array */
    int bad_status;       /* != 0: the request's form is wrong: answer this status */
    const char *bad_code; /* ... with this code of the carrier's ("" for none), static */
    const char *bad_text; /* ... and these words, static */
} fc_ask_t;

/* An answer being made. */
typedef struct {
    int status;            /* HTTP status */
    char content_type[96]; /* "" for none */
    rt_buf_t body;         /* owned */
    char retry_after[16];  /* "" for none */
} fc_made_t;

/* The fields of each carrier's state (fc_state_t.f): what the
 * setters write and the answers read. */
enum {
    NP_STATUS_CODE,
    NP_STATUS,
    NP_CREATED,
    NP_SCHEDULED,
    NP_PAYED_KEEPING,
    NP_RECEIVED,
    NP_UPDATED,
    NP_CITY_SENDER,
    NP_CITY_RECIPIENT,
    NP_WAREHOUSE_SENDER,
    NP_WAREHOUSE_RECIPIENT,
    NP_COD_STATUS,
    NP_REDELIVERY_SUM,
    NP_PHONE_RECIPIENT,
    NP_PHONE_SENDER,
    NP_RECIPIENT_NAME,
    NP_RECIPIENT_ADDRESS,
    NP_SENDER_ADDRESS,
    NP_MEMBERS_FULL,  /* the item's members but Number and RefEW, as JSON text */
    NP_MEMBERS_SHORT, /* the same, the short record's */
    NP_FIELDS
};
enum {
    UP_EVENT,
    UP_EVENT_NAME,
    UP_DATE,
    UP_INDEX,
    UP_NAME,
    UP_REASON_ID, /* "" for null */
    UP_REASON,
    UP_HAS_REASON, /* "1" when eventReason is not null */
    UP_COUNTRY,
    UP_FIELDS
};
enum { ME_CODE, ME_DESCR, ME_DESCR_EN, ME_DATE, ME_CITY, ME_COUNTRY, ME_DETAIL, ME_FIELDS };
enum {
    DHL_SERVICE,
    DHL_CODE,
    DHL_STATUS,
    DHL_DESCRIPTION,
    DHL_TIMESTAMP,
    DHL_LOCATION,
    DHL_ESTIMATED,
    DHL_ORIGIN,
    DHL_ORIGIN_COUNTRY,
    DHL_DESTINATION,
    DHL_DESTINATION_COUNTRY,
    DHL_FIELDS
};
enum {
    UPS_TYPE,
    UPS_CODE,
    UPS_STATUS_CODE,
    UPS_DESCRIPTION,
    UPS_SIMPLIFIED,
    UPS_DATE,
    UPS_TIME,
    UPS_GMT_DATE,
    UPS_GMT_TIME,
    UPS_GMT_OFFSET,
    UPS_CITY,
    UPS_PROVINCE,
    UPS_COUNTRY,
    UPS_SDD,
    UPS_RDD,
    UPS_DEL,
    UPS_DEL_TIME,
    UPS_FIELDS
};

/* --- reading requests (rt_test_fake_carrier_read.c) --- */

/* Reads req (to carrier's route; oauth: UPS's token route) into *ask.
 * Any thread, no lock. */
void fc_read (rt_fc_carrier_t carrier, bool oauth, rt_http_request_t *req, fc_ask_t *ask);

/* Frees what an ask owns. */
void fc_ask_free (fc_ask_t *ask);

/* --- writing answers (rt_test_fake_carrier_shapes.c) --- */

/* The stateful answer to ask; counts fetches, documents not found and
 * over-fetches. */
void fc_answer_state (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const fc_ask_t *ask,
                      fc_made_t *m);

/* The refusal of credentials; `missing`: none were given. */
void fc_answer_bad_key (rt_fc_carrier_t carrier, bool oauth, bool missing, fc_made_t *m);

/* The refusal of a malformed request (ask->bad_*). */
void fc_answer_bad_request (rt_fc_carrier_t carrier, const fc_ask_t *ask, fc_made_t *m);

/* The carrier's 429; retry_after_s <= 0: no Retry-After (UPS never). */
void fc_answer_rate_limit (rt_fc_carrier_t carrier, int retry_after_s, fc_made_t *m);

/* A canned answer of a kind other than STATE, TRUNCATED, RATE_LIMIT. */
void fc_answer_canned (rt_fc_carrier_t carrier, const fc_script_t *s, fc_made_t *m);

/* The UPS token answer. */
void fc_answer_token (const fc_token_t *t, int64_t issued_ms, int64_t life_s, fc_made_t *m);

/* True when `name` is an ERROR carrier documents. */
bool fc_error_known (rt_fc_carrier_t carrier, const char *name);

/* --- parcels and states (rt_test_fake_carrier_states.c) --- */

/* The parcel of carrier, number and service ("" or NULL for none), NULL
 * when unknown. */
fc_parcel_t *fc_parcel_find (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const char *number,
                             const char *service);

/* Counts one stateful answer for p (and an over-fetch past the limit). */
void fc_parcel_fetched (rt_fake_carrier_t *fc, fc_parcel_t *p);

/* Appends state (held once more per parcel) to each of numbers[0..n) of
 * carrier (and service), making the parcels that are new. */
void fc_parcels_append (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const char *const *numbers,
                        size_t n, const char *service, fc_state_t *state);

/* Makes a state of values[0..n) (NULL as ""), copied into one allocation,
 * held once. Aborts when out of memory. */
fc_state_t *fc_state_new (int64_t at_ms, const char *const *values, size_t n);

/* Frees every parcel and its history (at stop). */
void fc_parcels_free (rt_fake_carrier_t *fc);

/* Drops one hold of s, freeing it at the last. */
void fc_state_release (fc_state_t *s);

/* The zone named `name` (NULL: "UTC"), opened once; NULL with the reason
 * in err for a zone ICU does not know, or too many. */
rt_tz_t *fc_zone (rt_fake_carrier_t *fc, const char *name, char *err, size_t errlen);

/* Adds a DHL service to the ones the fake tells apart; false when there
 * are too many already. */
bool fc_service_add (rt_fake_carrier_t *fc, const char *service);

/* --- the machinery (rt_test_fake_carrier.c) --- */

/* The fake's wall clock (unix ms). */
int64_t fc_now_ms (rt_fake_carrier_t *fc);

/* calloc and strdup (of NULL: "") that abort when out of memory. */
void *fc_alloc (size_t n);
char *fc_dup (const char *s);

/* Aborts the process, saying why: a failure on a server thread, where
 * cmocka cannot fail the test. */
void fc_die (const char *what) __attribute__ ((noreturn));

#endif
