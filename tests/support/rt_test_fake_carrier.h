/*
 * rt_test_fake_carrier: the carriers' tracking APIs, faked on loopback,
 * for trackerd's tests and its benchmark.
 *
 * One HTTP server (rt_http_server on 127.0.0.1, a free port, two worker
 * threads, keep-alive) serves the five carriers trackerd polls at their
 * real paths; rt_fake_carrier_api gives the base each carrier's
 * RETAIN_TRACKER_<CARRIER>_API holds:
 *   nova_poshta  POST /v2.0/json/ (and /v2.0/json): TrackingDocument.
 *                getStatusDocuments, up to 100 Documents [{DocumentNumber,
 *                Phone}] a call                            api "<base>/v2.0/json/"
 *   ukrposhta    POST /status-tracking/0.0.1/statuses/last, a JSON array of
 *                barcodes (also GET .../statuses/last?barcode= for one, and
 *                GET .../statuses?barcode= for its every event)
 *                                                          api "<base>/status-tracking/0.0.1"
 *   meest        GET /v3.0/openAPI/tracking/{number}      api "<base>/v3.0/openAPI"
 *   dhl          GET /track/shipments?trackingNumber=&service=&language=
 *                                                          api "<base>"
 *   ups          POST /security/v1/oauth/token, then
 *                GET /api/track/v1/details/{number}       api "<base>"
 * Anything else is answered 404 by the server and not recorded. The shapes
 * are those of ../shared/reference/providers.md section 1, written here
 * independently of trackerd's adapters (an adapter that misreads its
 * carrier must not agree with itself); where a source is named below it
 * is the one the shape was checked against, and "the fake's" marks what
 * no source documents (a text, a code), chosen here so a test can name it.
 *
 * Parcels. The test sets each parcel's current state with its carrier's
 * setter (rt_fake_carrier_np_set, ..._ukrposhta_set, ..._meest_set,
 * ..._dhl_set, ..._ups_set, and for Nova Poshta and Ukrposhta the _many
 * forms for a batch), in the carrier's own terms; times are unix ms and
 * the fake formats them as the carrier does (Nova Poshta "YYYY-MM-DD
 * HH:MM:SS" and Ukrposhta "YYYY-MM-DDTHH:MM:SS" in Europe/Kyiv local time,
 * DST included; DHL ISO 8601 in UTC with "Z"; UPS "YYYYMMDD" and "HHMMSS"
 * in the activity's zone with gmtDate/gmtTime/gmtOffset). Every set
 * appends to the parcel's history; Meest answers it oldest first, DHL and
 * UPS newest first (as they document); Nova Poshta and Ukrposhta's
 * statuses/last answer the current state only. Parcels are kept in a hash
 * table and a state is formatted (for Nova Poshta, escaped as JSON) once,
 * when it is set, so a call of 100 documents costs the fake about 0.2 ms
 * of CPU in a release build, 1 ms under the sanitizers (the test prints
 * the figure); a state set with a _many setter is made once and shared by
 * all its parcels: 100,000 parcels register in about 30 ms.
 *
 * What each carrier answers, statefully:
 *   nova_poshta  HTTP 200 {success, data[], errors[], warnings[], info[],
 *                messageCodes[], errorCodes[], warningCodes[], infoCodes[]}
 *                (shopanaio/carrier-api base.ts). An item per document in
 *                request order, every value a string but the Possibility*
 *                flags (booleans). Without a Phone matching the parcel's
 *                PhoneRecipient or PhoneSender (digits compared exactly),
 *                the short record: RecipientFullName, RecipientFullNameEW,
 *                SenderFullNameEW, PhoneRecipient, PhoneSender,
 *                RecipientAddress, SenderAddress and
 *                CounterpartyRecipientDescription are "". An unknown number:
 *                {Number, StatusCode "3", Status "Номер не знайдено"}.
 *                Refusals are HTTP 200 with success false, data [] and
 *                errorCodes: no apiKey 20000200069, a wrong one
 *                20000200068; Documents not an array 20000200159, a
 *                DocumentNumber missing or empty 20000200157, not a string of
 *                digits 20000200158 (codes: shopanaio errors.ts, texts its
 *                English ones); more than 100 documents, or another
 *                modelName/calledMethod, errors[] with no code (the fake's
 *                words: NP publishes no code for them).
 *   ukrposhta    Authorization: Bearer. HTTP 200, a JSON array of event
 *                objects {barcode, step, date, index, name, event (a
 *                number), eventName, country, eventReason, eventReason_id
 *                (null when none)}, one per known barcode in request order;
 *                unknown barcodes are left out, and when none is known:
 *                404 {"code": 404, "message": "Barcode not found"} (the
 *                fake's body). A wrong bearer: 401 with the WSO2 gateway's
 *                {"fault": {"code": 900908, "message": "Resource forbidden
 *                ", ...}}; none: 401, code 900902 "Missing Credentials".
 *                A body that is not a JSON array of barcodes, or a GET
 *                without barcode: 400 {"code": 400, "message"} (the fake's).
 *   meest        header `token`. HTTP 200 {status "OK", info, fieldName,
 *                message, messageDetails, result: [events, oldest first]}
 *                (shopanaio meest-api-client types), each event
 *                {parcelNumber, barCode, eventDateTime "YYYY-MM-DD HH:MM:SS"
 *                Kyiv time (the format is the fake's: no source shows one),
 *                eventCode (a number), eventCodeUPU, eventCountryDescr,
 *                eventCityDescr, eventDescr, eventDetailDescr (each
 *                {descrUA, descrRU, descrEN})}. Unknown: result [] (the
 *                fake's). A wrong or missing token: 401 {status "Error",
 *                message "Invalid token"} (the fake's words).
 *   dhl          header DHL-API-Key. HTTP 200 {shipments: [{id, service,
 *                origin, destination ({address: {countryCode,
 *                addressLocality}}), status {timestamp, location, statusCode,
 *                status, description}, estimatedTimeOfDelivery (when set),
 *                details, events [newest first]}]}: every shipment of that
 *                number, or only the one of `service` when given (the same
 *                number on two services is two shipments). None: 404
 *                {title "No result found", status 404, detail "No shipment
 *                with given tracking number found."}; a wrong or missing
 *                key: 401 {title "Unauthorized", ...}; no trackingNumber:
 *                400.
 *   ups          token: Basic base64(client_id:secret), form grant_type=
 *                client_credentials; 200 {token_type "Bearer", issued_at (ms,
 *                a string), client_id, access_token, scope "",
 *                expires_in "14399" (rt_fake_carrier_ups_token_life),
 *                refresh_count "0", status "approved"} (UPS-API
 *                OAuthClientCredentials.yaml: every value a string); wrong
 *                credentials 401 {response: {errors: [{code "10401",
 *                message "ClientId is Invalid"}]}} (karrio#503); another
 *                grant_type 400 (the fake's code "10400").
 *                track: Bearer from a token the fake issued, not expired
 *                (by the fake's clock) nor revoked, else 401 code "250002"
 *                "Invalid Authentication Information."; headers transId and
 *                transactionSrc required, else 400 code "400" (the fake's
 *                code); 200 {trackResponse: {shipment: [{inquiryNumber,
 *                package: [{trackingNumber, deliveryDate [{type SDD|RDD|
 *                DEL, date}], deliveryTime (DEL), currentStatus {type,
 *                description, code, statusCode, simplifiedTextDescription},
 *                activity [newest first], packageCount}]}]}} (UPS-API
 *                Tracking.yaml). Unknown: 200 with the shipment's warnings
 *                [{code "TW0001", message "Tracking Information Not
 *                Found"}], as UPS answers in fact (UPS-API/api-documentation
 *                #102, #166; its spec says 404: ERROR "TW0001" gives that).
 *
 * Credentials. rt_fake_carrier_account adds an accepted key (apiKey,
 * bearer, token, DHL key, or UPS client id with its secret); until one is
 * added any non-empty key is accepted, each key an account of its own.
 *
 * Limits, off unless rt_fake_carrier_limits sets them, are kept per
 * account: a call sooner than min_interval_ms after the account's
 * previous accepted call, or past its daily quota, is refused with HTTP
 * 429 (DHL: {title "Too many requests", status 429, detail "Too many
 * requests within defined time period"} with Retry-After, the seconds
 * until the call would be allowed; the others 429 with no Retry-After:
 * Nova Poshta and Meest text/plain, Ukrposhta WSO2's 900800 "Message
 * throttled out", UPS its error shape) and counted; a refused call does
 * not count as the previous one. Fetches of one parcel beyond
 * parcel_daily_max a day (DHL asks at most 10) are answered and counted as
 * over-fetches. The day is the UTC day of the fake's clock (DHL's quota
 * resets at 24:00 GMT): rt_clock_now_ms unless rt_fake_carrier_clock
 * gives another (which starts a new day); rt_fake_carrier_day_reset starts
 * a new one at once.
 * UPS token requests are not limited. Checks run in this order: script,
 * credentials, limits, the request's form, then the state.
 *
 * Scripts. Each carrier has a queue of canned answers (UPS two: its token
 * requests' and its tracking requests'), taken one per request in order
 * before anything else; a canned answer skips the credentials and the
 * limits (STATE and TRUNCATED, being the stateful answer, go through
 * them). Once the queue is empty, the stateful answer:
 *   STATE         the stateful answer itself (to delay it)
 *   RATE_LIMIT    the carrier's 429 as above; retry_after_s > 0 is sent as
 *                 Retry-After (never by UPS, which sends none:
 *                 UPS-API/api-documentation#8)
 *   SERVER_ERROR  `status` (503 when 0), text/plain "Service Unavailable"
 *   HTML          `status` (502 when 0), a proxy's HTML error page
 *   TRUNCATED     the stateful answer, its body cut in half
 *   GARBAGE       200, application/json, bytes that are not JSON
 *   ERROR         a documented error named by its code: Nova Poshta
 *                 "20000100016" (service unavailable), "20000200068",
 *                 "20000200069", "20000200157", "20000200158",
 *                 "20000200159", "20000300415" (HTTP 200, success false);
 *                 Ukrposhta "900908" (401); UPS "10401" (401), "250002"
 *                 (401), "250003" (401 "Invalid Access License number"),
 *                 "151018" (400 "Invalid tracking number"), "TW0001" (404
 *                 "Tracking Information Not Found"). Meest and DHL document
 *                 none by code; an unknown name fails the test at push.
 *   RAW           `status`, `content_type` and `body` as given
 * Any answer may come after delay_ms: the request is deferred on its
 * worker's loop, which answers others meanwhile; longer than the client's
 * timeout, it is a timeout. Answers still delayed at stop are sent then.
 *
 * What the test reads: per carrier its counts (rt_fake_carrier_stats),
 * each call in arrival order with its arrival (monotonic µs, the server's
 * first byte), documents, status and outcome (rt_fake_carrier_call), and
 * each parcel's fetches today (rt_fake_carrier_fetches).
 *
 * Thread-safe: one mutex guards everything; the server's threads answer
 * while the test's thread sets parcels and reads counts. Setup errors
 * (bad arguments, no port, a zone ICU does not know) fail the test
 * (cmocka), as in rt_test. rt_fc_ names the fake carrier's types and
 * constants (rt_fake_ is the providers' fake's, rt_test_fake_provider.h).
 */
#ifndef RT_TEST_FAKE_CARRIER_H
#define RT_TEST_FAKE_CARRIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_fake_carrier_t rt_fake_carrier_t;

/* The carriers, as trackerd names them. */
typedef enum {
    RT_FC_NOVA_POSHTA = 0, /* "nova_poshta" */
    RT_FC_UKRPOSHTA,       /* "ukrposhta" */
    RT_FC_MEEST,           /* "meest" */
    RT_FC_DHL,             /* "dhl" */
    RT_FC_UPS,             /* "ups" */
    RT_FC_CARRIERS         /* how many; to rt_fake_carrier_wait: any of them */
} rt_fc_carrier_t;

/* What kind of scripted answer. */
typedef enum {
    RT_FC_STATE = 0,    /* the stateful answer (with delay_ms, late) */
    RT_FC_RATE_LIMIT,   /* the carrier's 429, retry_after_s */
    RT_FC_SERVER_ERROR, /* a 5xx with a plain-text body */
    RT_FC_HTML,         /* a proxy's HTML error page */
    RT_FC_TRUNCATED,    /* the stateful answer cut in half */
    RT_FC_GARBAGE,      /* 200 "application/json" that is not JSON */
    RT_FC_ERROR,        /* a documented error, named by `error` */
    RT_FC_RAW,          /* status, content_type and body as given */
} rt_fc_answer_kind_t;

/* One canned answer; its strings are copied at push. */
typedef struct {
    rt_fc_answer_kind_t kind; /* which */
    int status;               /* SERVER_ERROR, HTML, RAW: the HTTP status (0: the kind's) */
    int retry_after_s;        /* RATE_LIMIT: Retry-After seconds; 0: none sent */
    int delay_ms;             /* answer this much later (any kind); 0: at once */
    bool oauth;               /* UPS: for the next token request (else the next track) */
    const char *error;        /* ERROR: which documented error (see the head) */
    const char *content_type; /* RAW: its Content-Type; NULL: none */
    const char *body;         /* RAW: its body; NULL: empty */
} rt_fc_answer_t;

/* Limits per account (rt_fake_carrier_limits); 0 turns one off. */
typedef struct {
    int min_interval_ms;  /* least time from one accepted call's arrival to the next's */
    int daily_quota;      /* accepted calls a day */
    int parcel_daily_max; /* fetches of one parcel a day before over-fetches are counted */
} rt_fc_limits_t;

/* How the fake dealt with a call. */
typedef enum {
    RT_FC_ANSWERED = 0, /* the stateful answer (found or not) */
    RT_FC_SCRIPTED,     /* a scripted answer (rt_fc_call_t.answer says which) */
    RT_FC_BAD_KEY,      /* the credentials refused (missing, wrong, expired token) */
    RT_FC_TOO_SOON,     /* refused 429: sooner than min_interval_ms */
    RT_FC_OVER_QUOTA,   /* refused 429: past the daily quota */
    RT_FC_BAD_REQUEST,  /* the request's form refused (documents, headers, grant) */
} rt_fc_outcome_t;

/* One call, as recorded. */
typedef struct {
    int64_t arrival_us;         /* CLOCK_MONOTONIC µs of its first byte (rt_http_arrival_us) */
    size_t documents;           /* parcels it asked for */
    int status;                 /* the HTTP status answered */
    rt_fc_outcome_t outcome;    /* what the fake made of it */
    rt_fc_answer_kind_t answer; /* SCRIPTED: the script's kind (else STATE) */
    bool oauth;                 /* UPS: a token request */
    char number[64];            /* its first tracking number ("" for none or a token request) */
} rt_fc_call_t;

/* A carrier's counts since start. */
typedef struct {
    size_t calls;         /* tracking requests, whatever their answer */
    size_t token_calls;   /* UPS token requests */
    size_t tokens_issued; /* UPS tokens handed out */
    size_t documents;     /* parcels asked for, over every tracking request */
    size_t not_found;     /* of which the fake knew none (answered statefully) */
    size_t scripted;      /* requests answered from the script */
    size_t bad_key;       /* refused credentials */
    size_t too_soon;      /* spacing violations (refused) */
    size_t over_quota;    /* quota violations (refused) */
    size_t bad_request;   /* malformed requests (refused) */
    size_t over_fetches;  /* fetches past parcel_daily_max (answered) */
} rt_fc_stats_t;

/* --- the server --- */

/* Starts the fake on a free loopback port; fails the test on error. */
rt_fake_carrier_t *rt_fake_carrier_start (void);

/* Answers what is still delayed, stops the server and frees everything.
 * Safe on NULL; sets *self_p NULL. */
void rt_fake_carrier_stop (rt_fake_carrier_t **self_p);

/* "http://127.0.0.1:<port>" (lent). */
const char *rt_fake_carrier_base (const rt_fake_carrier_t *self);

/* The base trackerd is configured with for carrier (RETAIN_TRACKER_
 * <CARRIER>_API, carrier_account_t.base_url), lent: see the head. */
const char *rt_fake_carrier_api (const rt_fake_carrier_t *self, rt_fc_carrier_t carrier);

/* The carrier trackerd names `name` ("nova_poshta", ...); RT_FC_CARRIERS
 * when none. */
rt_fc_carrier_t rt_fake_carrier_find (const char *name);

/* trackerd's name of carrier (static), "" out of range. */
const char *rt_fake_carrier_name (rt_fc_carrier_t carrier);

/* --- credentials, limits, the clock --- */

/* Accepts key for carrier from now on (and only the keys so added); for
 * UPS key is the client id and secret its secret (NULL for the others).
 * Copied. */
void rt_fake_carrier_account (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, const char *key,
                              const char *secret);

/* Sets carrier's limits per account (copied); NULL turns them off. */
void rt_fake_carrier_limits (rt_fake_carrier_t *self, rt_fc_carrier_t carrier,
                             const rt_fc_limits_t *limits);

/* The wall clock (unix ms) the fake reads for days, token expiry and
 * "now"; NULL: rt_clock_now_ms. fn runs on the server's threads. */
typedef int64_t (*rt_fc_clock_fn) (void *arg);
void rt_fake_carrier_clock (rt_fake_carrier_t *self, rt_fc_clock_fn fn, void *arg);

/* Starts a new day now: every account's quota and every parcel's fetches
 * count from zero again. */
void rt_fake_carrier_day_reset (rt_fake_carrier_t *self);

/* The expires_in of UPS tokens issued from now on, seconds (default 14399). */
void rt_fake_carrier_ups_token_life (rt_fake_carrier_t *self, int64_t seconds);

/* Revokes a UPS token the fake issued (NULL: every one issued so far): a
 * track call with it is refused 401. */
void rt_fake_carrier_ups_revoke (rt_fake_carrier_t *self, const char *token);

/* The last UPS token issued into out (len bytes); false when none yet. */
bool rt_fake_carrier_ups_token (rt_fake_carrier_t *self, char *out, size_t len);

/* --- scripts --- */

/* Queues an answer on carrier's script; fails the test on an ERROR name
 * the carrier does not document (see the head) or oauth for a carrier
 * other than UPS. */
void rt_fake_carrier_push (rt_fake_carrier_t *self, rt_fc_carrier_t carrier,
                           const rt_fc_answer_t *answer);

/* --- parcels: each set appends a state to the parcel's history (strings
 *     copied; NULL strings are ""; a time of 0 is absent, but an event's
 *     own time, which 0 makes the fake's now) --- */

/* Nova Poshta: one waybill state (the getStatusDocuments item). */
typedef struct {
    const char *status_code;         /* StatusCode, e.g. "7" */
    const char *status;              /* Status, its words */
    int64_t created_ms;              /* DateCreated */
    int64_t scheduled_ms;            /* ScheduledDeliveryDate: the promise */
    int64_t payed_keeping_ms;        /* DatePayedKeeping: paid storage from (free storage ends) */
    int64_t received_ms;             /* RecipientDateTime and ActualDeliveryDate */
    int64_t updated_ms;              /* TrackingUpdateDate and DateScan; 0: now */
    const char *city_sender;         /* CitySender */
    const char *city_recipient;      /* CityRecipient */
    const char *warehouse_sender;    /* WarehouseSender */
    const char *warehouse_recipient; /* WarehouseRecipient */
    const char *cod_status;          /* LastTransactionStatusGM (the COD money transfer) */
    const char *redelivery_sum;      /* RedeliverySum (COD); NULL or "": none, Redelivery "0" */
    const char *phone_recipient;     /* PhoneRecipient: unlocks the full record (digits) */
    const char *phone_sender;        /* PhoneSender: unlocks it too */
    const char *recipient_name;      /* RecipientFullName (full record only) */
} rt_fc_np_state_t;

/* Ukrposhta: one event. */
typedef struct {
    int event;                /* event, e.g. 21700 */
    const char *event_name;   /* eventName */
    int64_t at_ms;            /* date; 0: now */
    const char *index;        /* index: the office's postcode */
    const char *name;         /* name: the office */
    int event_reason_id;      /* eventReason_id; 0: null */
    const char *event_reason; /* eventReason; NULL: null */
    const char *country;      /* country; NULL: "UA" */
} rt_fc_ukrposhta_state_t;

/* Meest: one event. */
typedef struct {
    int event_code;       /* eventCode, e.g. 1622 */
    const char *descr;    /* eventDescr.descrUA */
    const char *descr_en; /* eventDescr.descrEN */
    int64_t at_ms;        /* eventDateTime; 0: now */
    const char *city;     /* eventCityDescr.descrUA */
    const char *country;  /* eventCountryDescr.descrUA; NULL: "Україна" */
    const char *detail;   /* eventDetailDescr.descrUA */
} rt_fc_meest_state_t;

/* DHL: one event of one shipment (number and service). */
typedef struct {
    const char *service;             /* "express", "parcel-de", ...; NULL: "express" */
    const char *status_code;         /* status.statusCode: pre-transit, transit, delivered,
                                        failure, unknown */
    const char *status;              /* status.status */
    const char *description;         /* status.description */
    int64_t at_ms;                   /* status.timestamp; 0: now */
    const char *location;            /* status.location.address.addressLocality */
    int64_t estimated_ms;            /* estimatedTimeOfDelivery (the shipment's, from its
                                        latest state) */
    const char *origin;              /* origin.address.addressLocality */
    const char *origin_country;      /* origin.address.countryCode */
    const char *destination;         /* destination.address.addressLocality */
    const char *destination_country; /* destination.address.countryCode */
} rt_fc_dhl_state_t;

/* UPS: one activity of a package. */
typedef struct {
    const char *type;        /* status.type: "M", "P", "I", "O", "D", "X", "RS", ... */
    const char *code;        /* status.code, e.g. "DP" */
    const char *status_code; /* status.statusCode, e.g. "005" */
    const char *description; /* status.description */
    const char *simplified;  /* currentStatus.simplifiedTextDescription; NULL: description */
    int64_t at_ms;           /* the activity's date and time; 0: now */
    const char *tz;          /* the IANA zone its local date and time are in; NULL: "UTC" */
    const char *city;        /* location.address.city */
    const char *province;    /* location.address.stateProvince */
    const char *country;     /* location.address.countryCode and country */
    int64_t scheduled_ms;    /* deliveryDate SDD (the package's, from its latest state) */
    int64_t rescheduled_ms;  /* deliveryDate RDD */
    int64_t delivered_ms;    /* deliveryDate DEL, and deliveryTime DEL */
} rt_fc_ups_state_t;

/* Appends state to the parcel's history (the parcel made at its first
 * state); the parcel is number for its carrier (DHL: with its service). */
void rt_fake_carrier_np_set (rt_fake_carrier_t *self, const char *number,
                             const rt_fc_np_state_t *state);
void rt_fake_carrier_ukrposhta_set (rt_fake_carrier_t *self, const char *barcode,
                                    const rt_fc_ukrposhta_state_t *state);
void rt_fake_carrier_meest_set (rt_fake_carrier_t *self, const char *number,
                                const rt_fc_meest_state_t *state);
void rt_fake_carrier_dhl_set (rt_fake_carrier_t *self, const char *number,
                              const rt_fc_dhl_state_t *state);
void rt_fake_carrier_ups_set (rt_fake_carrier_t *self, const char *number,
                              const rt_fc_ups_state_t *state);

/* The same state appended to each of numbers[0..n), made once and shared:
 * the cheap way to register many parcels. */
void rt_fake_carrier_np_set_many (rt_fake_carrier_t *self, const char *const *numbers, size_t n,
                                  const rt_fc_np_state_t *state);
void rt_fake_carrier_ukrposhta_set_many (rt_fake_carrier_t *self, const char *const *barcodes,
                                         size_t n, const rt_fc_ukrposhta_state_t *state);

/* --- what came --- */

/* carrier's counts into *out. */
void rt_fake_carrier_stats (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, rt_fc_stats_t *out);

/* Requests recorded for carrier (tracking and token ones). */
size_t rt_fake_carrier_calls (rt_fake_carrier_t *self, rt_fc_carrier_t carrier);

/* The i-th request recorded for carrier, in arrival order, into *out;
 * false past the last. */
bool rt_fake_carrier_call (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, size_t i,
                           rt_fc_call_t *out);

/* Waits until carrier (RT_FC_CARRIERS: all together) has at least count
 * requests recorded; false after timeout_ms. */
bool rt_fake_carrier_wait (rt_fake_carrier_t *self, rt_fc_carrier_t carrier, size_t count,
                           int timeout_ms);

/* How many times today the parcel `number` of carrier was answered
 * statefully (DHL: over its services); 0 for a parcel the fake does not
 * know. */
size_t rt_fake_carrier_fetches (rt_fake_carrier_t *self, rt_fc_carrier_t carrier,
                                const char *number);

#endif
