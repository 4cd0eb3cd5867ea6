/*
 * rt_test_fake_carrier_states: the parcels the fake knows and the states
 * the test gives them (see rt_test_fake_carrier.h).
 *
 * Parcels live in a chained hash table keyed by carrier, number and (for
 * DHL) service, grown by doubling; each holds its history as pointers to
 * states that are immutable and counted, so one state set on a hundred
 * thousand parcels is one allocation. A state is formatted when it is
 * set, into the strings its carrier sends (times converted once, here),
 * so that answering a hundred documents converts none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_civil.h"
#include "rt_jsonw.h"
#include "rt_test_fake_carrier_int.h"

#define S_DAY_MS   86400000LL
#define S_TIME_LEN 64 /* a formatted time, with room to spare */

/* --- states and parcels --- */

fc_state_t *
fc_state_new (int64_t at_ms, const char *const *values, size_t n)
{
    size_t bytes = sizeof (fc_state_t);
    if (n > FC_FIELDS_MAX)
        fc_die ("too many fields");
    for (size_t i = 0; i < n; i++)
        bytes += strlen (values[i] ? values[i] : "") + 1;
    fc_state_t *s = malloc (bytes);
    if (!s)
        fc_die ("out of memory");
    char *p = (char *)(s + 1);
    s->refs = 1;
    s->at_ms = at_ms;
    for (size_t i = 0; i < FC_FIELDS_MAX; i++)
        s->f[i] = "";
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "";
        size_t len = strlen (v) + 1;
        memcpy (p, v, len);
        s->f[i] = p;
        p += len;
    }
    return s;
}

void
fc_state_release (fc_state_t *s)
{
    if (s && --s->refs == 0)
        free (s);
}

/* FNV-1a over the carrier, the number and the service. */
static uint64_t
s_hash (rt_fc_carrier_t carrier, const char *number, const char *service)
{
    uint64_t h = 14695981039346656037ULL;
    h = (h ^ (uint64_t)carrier) * 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *)number; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *)service; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

fc_parcel_t *
fc_parcel_find (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const char *number,
                const char *service)
{
    if (!service)
        service = "";
    if (!fc->nbuckets || !number)
        return NULL;
    uint64_t h = s_hash (carrier, number, service);
    for (fc_parcel_t *p = fc->buckets[h & (fc->nbuckets - 1)]; p; p = p->next)
        if (p->hash == h && p->carrier == carrier && strcmp (p->number, number) == 0 &&
            strcmp (p->service, service) == 0)
            return p;
    return NULL;
}

static void
s_table_grow (rt_fake_carrier_t *fc)
{
    size_t n = fc->nbuckets ? 2 * fc->nbuckets : 1024;
    fc_parcel_t **buckets = calloc (n, sizeof *buckets);
    if (!buckets)
        fc_die ("out of memory");
    for (size_t i = 0; i < fc->nbuckets; i++) {
        fc_parcel_t *p = fc->buckets[i];
        while (p) {
            fc_parcel_t *next = p->next;
            p->next = buckets[p->hash & (n - 1)];
            buckets[p->hash & (n - 1)] = p;
            p = next;
        }
    }
    free (fc->buckets);
    fc->buckets = buckets;
    fc->nbuckets = n;
}

void
fc_parcels_append (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const char *const *numbers,
                   size_t n, const char *service, fc_state_t *state)
{
    if (!service)
        service = "";
    for (size_t i = 0; i < n; i++) {
        fc_parcel_t *p = fc_parcel_find (fc, carrier, numbers[i], service);
        if (!p) {
            if (fc->nparcels >= fc->nbuckets)
                s_table_grow (fc);
            p = fc_alloc (sizeof *p);
            p->carrier = carrier;
            p->number = fc_dup (numbers[i]);
            p->service = fc_dup (service);
            p->hash = s_hash (carrier, p->number, p->service);
            p->day = fc->day;
            p->next = fc->buckets[p->hash & (fc->nbuckets - 1)];
            fc->buckets[p->hash & (fc->nbuckets - 1)] = p;
            fc->nparcels++;
        }
        if (p->n == p->cap) {
            size_t cap = p->cap ? 2 * p->cap : 1;
            fc_state_t **grown = realloc (p->history, cap * sizeof *grown);
            if (!grown)
                fc_die ("out of memory");
            p->history = grown;
            p->cap = cap;
        }
        p->history[p->n++] = state;
        state->refs++;
    }
}

void
fc_parcel_fetched (rt_fake_carrier_t *fc, fc_parcel_t *p)
{
    int max = fc->carriers[p->carrier].limits.parcel_daily_max;
    if (p->day != fc->day) {
        p->day = fc->day;
        p->fetches = 0;
    }
    p->fetches++;
    if (max > 0 && p->fetches > (size_t)max)
        fc->carriers[p->carrier].stats.over_fetches++;
}

void
fc_parcels_free (rt_fake_carrier_t *fc)
{
    for (size_t i = 0; i < fc->nbuckets; i++) {
        fc_parcel_t *p = fc->buckets[i];
        while (p) {
            fc_parcel_t *next = p->next;
            for (size_t k = 0; k < p->n; k++)
                fc_state_release (p->history[k]);
            free (p->history);
            free (p->number);
            free (p->service);
            free (p);
            p = next;
        }
    }
    free (fc->buckets);
}

bool
fc_service_add (rt_fake_carrier_t *fc, const char *service)
{
    for (size_t i = 0; i < fc->nservices; i++)
        if (strcmp (fc->services[i], service) == 0)
            return true;
    if (fc->nservices == FC_SERVICES_MAX)
        return false;
    fc->services[fc->nservices++] = fc_dup (service);
    return true;
}

rt_tz_t *
fc_zone (rt_fake_carrier_t *fc, const char *name, char *err, size_t errlen)
{
    if (!name || !*name)
        name = "UTC";
    for (size_t i = 0; i < fc->nzones; i++)
        if (strcmp (fc->zone_names[i], name) == 0)
            return fc->zones[i];
    if (fc->nzones == FC_ZONES_MAX) {
        snprintf (err, errlen, "more than %d zones", FC_ZONES_MAX);
        return NULL;
    }
    rt_tz_t *tz = rt_tz_new (name, err, errlen);
    if (!tz)
        return NULL;
    fc->zone_names[fc->nzones] = fc_dup (name);
    fc->zones[fc->nzones] = tz;
    return fc->zones[fc->nzones++];
}

/* --- times, as each carrier writes them --- */

/* The wall clock of tz at ms; fails the test out of range. */
static void
s_local (const rt_tz_t *tz, int64_t ms, rt_tz_local_t *l)
{
    if (rt_tz_local (tz, ms, l) != 0)
        fail_msg ("fake carrier: time %lld out of range", (long long)ms);
}

/* Kyiv local "YYYY-MM-DD<sep>HH:MM:SS"; "" for 0. */
static void
s_kyiv (const rt_fake_carrier_t *fc, int64_t ms, char sep, char *out)
{
    rt_tz_local_t l;
    out[0] = '\0';
    if (!ms)
        return;
    s_local (fc->kyiv, ms, &l);
    snprintf (out, S_TIME_LEN, "%04d-%02d-%02d%c%02d:%02d:%02d", l.year, l.month, l.day, sep,
              l.hour, l.minute, l.second);
}

/* UTC calendar fields of ms. */
static void
s_utc (int64_t ms, int64_t *y, int *mo, int *d, int *h, int *mi, int *s)
{
    int64_t days = ms >= 0 ? ms / S_DAY_MS : -((-ms + S_DAY_MS - 1) / S_DAY_MS);
    int64_t rest = (ms - days * S_DAY_MS) / 1000;
    rt_civil_date (days, y, mo, d);
    *h = (int)(rest / 3600);
    *mi = (int)(rest / 60 % 60);
    *s = (int)(rest % 60);
}

/* ISO 8601 in UTC, "YYYY-MM-DDTHH:MM:SSZ" (DHL); "" for 0. */
static void
s_iso_utc (int64_t ms, char *out)
{
    int64_t y;
    int mo, d, h, mi, s;
    out[0] = '\0';
    if (!ms)
        return;
    s_utc (ms, &y, &mo, &d, &h, &mi, &s);
    snprintf (out, S_TIME_LEN, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, mo, d, h, mi, s);
}

/* UPS's "YYYYMMDD" (and "HHMMSS" into time when not NULL) in tz; "" for 0. */
static void
s_ups_local (const rt_tz_t *tz, int64_t ms, char *date, char *time)
{
    rt_tz_local_t l;
    date[0] = '\0';
    if (time)
        time[0] = '\0';
    if (!ms)
        return;
    s_local (tz, ms, &l);
    snprintf (date, S_TIME_LEN, "%04d%02d%02d", l.year, l.month, l.day);
    if (time)
        snprintf (time, S_TIME_LEN, "%02d%02d%02d", l.hour, l.minute, l.second);
}

/* --- making states (the test's thread) --- */

/* The fake's now, for an event set without a time. */
static int64_t
s_now (rt_fake_carrier_t *fc)
{
    pthread_mutex_lock (&fc->lock);
    int64_t now = fc_now_ms (fc);
    pthread_mutex_unlock (&fc->lock);
    return now;
}

/* Appends state (made by the caller, held once) to numbers[0..n). */
static void
s_put (rt_fake_carrier_t *fc, rt_fc_carrier_t carrier, const char *const *numbers, size_t n,
       const char *service, fc_state_t *state)
{
    for (size_t i = 0; i < n; i++)
        if (!numbers[i] || !*numbers[i])
            fail_msg ("fake carrier: a parcel needs a number");
    pthread_mutex_lock (&fc->lock);
    bool known = !service || fc_service_add (fc, service);
    if (known)
        fc_parcels_append (fc, carrier, numbers, n, service, state);
    fc_state_release (state);
    pthread_mutex_unlock (&fc->lock);
    if (!known)
        fail_msg ("fake carrier: more than %d DHL services", FC_SERVICES_MAX);
}

static const char *
s_or (const char *s, const char *otherwise)
{
    return s && *s ? s : otherwise;
}

/* "city, warehouse" as Nova Poshta's addresses read; "" when neither. */
static void
s_address (const char *city, const char *warehouse, char *out, size_t len)
{
    snprintf (out, len, "%s%s%s", s_or (city, ""),
              city && *city && warehouse && *warehouse ? ", " : "", s_or (warehouse, ""));
}

/* A Nova Poshta item's members but Number and RefEW (which are the
 * parcel's, not the state's), as JSON text without the braces: the full
 * record or the short one, whose names, phones and addresses are "". */
static char *
s_np_members (const char *const *f, bool full)
{
    rt_buf_t b = {0};
    rt_jsonw_t w;
    rt_jsonw_init (&w, &b);
    rt_jsonw_object (&w);
    rt_jsonw_kbool (&w, "PossibilityCreateReturn", false);
    rt_jsonw_kbool (&w, "PossibilityCreateRefusal", false);
    rt_jsonw_kbool (&w, "PossibilityChangeEW", false);
    rt_jsonw_kbool (&w, "PossibilityCreateRedirecting", false);
    rt_jsonw_kbool (&w, "PossibilityTermExtension", false);
    rt_jsonw_kstring (&w, "Redelivery", *s_or (f[NP_REDELIVERY_SUM], "") ? "1" : "0");
    rt_jsonw_kstring (&w, "RedeliverySum", s_or (f[NP_REDELIVERY_SUM], ""));
    rt_jsonw_kstring (&w, "LastTransactionStatusGM", s_or (f[NP_COD_STATUS], ""));
    rt_jsonw_kstring (&w, "LastCreatedOnTheBasisNumber", "");
    rt_jsonw_kstring (&w, "DateCreated", f[NP_CREATED]);
    rt_jsonw_kstring (&w, "DocumentWeight", "0.5");
    rt_jsonw_kstring (&w, "DocumentCost", "70");
    rt_jsonw_kstring (&w, "PayerType", "Recipient");
    rt_jsonw_kstring (&w, "PaymentMethod", "Cash");
    rt_jsonw_kstring (&w, "CargoType", "Parcel");
    rt_jsonw_kstring (&w, "ServiceType", "WarehouseWarehouse");
    rt_jsonw_kstring (&w, "SeatsAmount", "1");
    rt_jsonw_kstring (&w, "RecipientFullName", full ? s_or (f[NP_RECIPIENT_NAME], "") : "");
    rt_jsonw_kstring (&w, "RecipientFullNameEW", full ? s_or (f[NP_RECIPIENT_NAME], "") : "");
    rt_jsonw_kstring (&w, "CounterpartyRecipientDescription",
                      full ? s_or (f[NP_RECIPIENT_NAME], "") : "");
    rt_jsonw_kstring (&w, "PhoneRecipient", full ? s_or (f[NP_PHONE_RECIPIENT], "") : "");
    rt_jsonw_kstring (&w, "RecipientAddress", full ? f[NP_RECIPIENT_ADDRESS] : "");
    rt_jsonw_kstring (&w, "SenderFullNameEW", "");
    rt_jsonw_kstring (&w, "PhoneSender", full ? s_or (f[NP_PHONE_SENDER], "") : "");
    rt_jsonw_kstring (&w, "SenderAddress", full ? f[NP_SENDER_ADDRESS] : "");
    rt_jsonw_kstring (&w, "CitySender", s_or (f[NP_CITY_SENDER], ""));
    rt_jsonw_kstring (&w, "CityRecipient", s_or (f[NP_CITY_RECIPIENT], ""));
    rt_jsonw_kstring (&w, "WarehouseSender", s_or (f[NP_WAREHOUSE_SENDER], ""));
    rt_jsonw_kstring (&w, "WarehouseRecipient", s_or (f[NP_WAREHOUSE_RECIPIENT], ""));
    rt_jsonw_kstring (&w, "ScheduledDeliveryDate", f[NP_SCHEDULED]);
    rt_jsonw_kstring (&w, "ActualDeliveryDate", f[NP_RECEIVED]);
    rt_jsonw_kstring (&w, "RecipientDateTime", f[NP_RECEIVED]);
    rt_jsonw_kstring (&w, "DatePayedKeeping", f[NP_PAYED_KEEPING]);
    rt_jsonw_kstring (&w, "DateScan", f[NP_UPDATED]);
    rt_jsonw_kstring (&w, "TrackingUpdateDate", f[NP_UPDATED]);
    rt_jsonw_kstring (&w, "UndeliveryReasonsSubtypeDescription", "");
    rt_jsonw_kstring (&w, "StatusCode", f[NP_STATUS_CODE]);
    rt_jsonw_kstring (&w, "Status", s_or (f[NP_STATUS], ""));
    rt_jsonw_object_end (&w);
    if (!rt_jsonw_ok (&w))
        fc_die ("out of memory");
    /* Without the braces: the answer puts the parcel's members first. */
    b.data[b.len - 1] = '\0';
    memmove (b.data, b.data + 1, b.len - 1);
    return b.data;
}

void
rt_fake_carrier_np_set_many (rt_fake_carrier_t *self, const char *const *numbers, size_t n,
                             const rt_fc_np_state_t *st)
{
    char created[S_TIME_LEN], scheduled[S_TIME_LEN], keeping[S_TIME_LEN], received[S_TIME_LEN],
        updated[S_TIME_LEN], to[512], from[512];
    if (!st->status_code || !*st->status_code)
        fail_msg ("fake carrier: a Nova Poshta state needs a StatusCode");
    int64_t at = st->updated_ms ? st->updated_ms : s_now (self);
    s_kyiv (self, st->created_ms, ' ', created);
    s_kyiv (self, st->scheduled_ms, ' ', scheduled);
    s_kyiv (self, st->payed_keeping_ms, ' ', keeping);
    s_kyiv (self, st->received_ms, ' ', received);
    s_kyiv (self, at, ' ', updated);
    s_address (st->city_recipient, st->warehouse_recipient, to, sizeof to);
    s_address (st->city_sender, st->warehouse_sender, from, sizeof from);
    const char *v[NP_FIELDS] = {
        [NP_STATUS_CODE] = st->status_code,
        [NP_STATUS] = st->status,
        [NP_CREATED] = created,
        [NP_SCHEDULED] = scheduled,
        [NP_PAYED_KEEPING] = keeping,
        [NP_RECEIVED] = received,
        [NP_UPDATED] = updated,
        [NP_CITY_SENDER] = st->city_sender,
        [NP_CITY_RECIPIENT] = st->city_recipient,
        [NP_WAREHOUSE_SENDER] = st->warehouse_sender,
        [NP_WAREHOUSE_RECIPIENT] = st->warehouse_recipient,
        [NP_COD_STATUS] = st->cod_status,
        [NP_REDELIVERY_SUM] = st->redelivery_sum,
        [NP_PHONE_RECIPIENT] = st->phone_recipient,
        [NP_PHONE_SENDER] = st->phone_sender,
        [NP_RECIPIENT_NAME] = st->recipient_name,
        [NP_RECIPIENT_ADDRESS] = to,
        [NP_SENDER_ADDRESS] = from,
    };
    char *full = s_np_members (v, true), *brief = s_np_members (v, false);
    v[NP_MEMBERS_FULL] = full;
    v[NP_MEMBERS_SHORT] = brief;
    s_put (self, RT_FC_NOVA_POSHTA, numbers, n, NULL, fc_state_new (at, v, NP_FIELDS));
    free (full);
    free (brief);
}

void
rt_fake_carrier_np_set (rt_fake_carrier_t *self, const char *number, const rt_fc_np_state_t *state)
{
    rt_fake_carrier_np_set_many (self, &number, 1, state);
}

void
rt_fake_carrier_ukrposhta_set_many (rt_fake_carrier_t *self, const char *const *barcodes, size_t n,
                                    const rt_fc_ukrposhta_state_t *st)
{
    char date[S_TIME_LEN], event[16], reason_id[16] = "";
    int64_t at = st->at_ms ? st->at_ms : s_now (self);
    s_kyiv (self, at, 'T', date);
    snprintf (event, sizeof event, "%d", st->event);
    if (st->event_reason_id)
        snprintf (reason_id, sizeof reason_id, "%d", st->event_reason_id);
    const char *v[UP_FIELDS] = {
        [UP_EVENT] = event,
        [UP_EVENT_NAME] = st->event_name,
        [UP_DATE] = date,
        [UP_INDEX] = st->index,
        [UP_NAME] = st->name,
        [UP_REASON_ID] = reason_id,
        [UP_REASON] = st->event_reason,
        [UP_HAS_REASON] = st->event_reason ? "1" : "",
        [UP_COUNTRY] = s_or (st->country, "UA"),
    };
    s_put (self, RT_FC_UKRPOSHTA, barcodes, n, NULL, fc_state_new (at, v, UP_FIELDS));
}

void
rt_fake_carrier_ukrposhta_set (rt_fake_carrier_t *self, const char *barcode,
                               const rt_fc_ukrposhta_state_t *state)
{
    rt_fake_carrier_ukrposhta_set_many (self, &barcode, 1, state);
}

void
rt_fake_carrier_meest_set (rt_fake_carrier_t *self, const char *number,
                           const rt_fc_meest_state_t *st)
{
    char date[S_TIME_LEN], code[16];
    int64_t at = st->at_ms ? st->at_ms : s_now (self);
    s_kyiv (self, at, ' ', date);
    snprintf (code, sizeof code, "%d", st->event_code);
    const char *v[ME_FIELDS] = {
        [ME_CODE] = code,
        [ME_DESCR] = st->descr,
        [ME_DESCR_EN] = st->descr_en,
        [ME_DATE] = date,
        [ME_CITY] = st->city,
        [ME_COUNTRY] = s_or (st->country, "Україна"),
        [ME_DETAIL] = st->detail,
    };
    s_put (self, RT_FC_MEEST, &number, 1, NULL, fc_state_new (at, v, ME_FIELDS));
}

void
rt_fake_carrier_dhl_set (rt_fake_carrier_t *self, const char *number, const rt_fc_dhl_state_t *st)
{
    char stamp[S_TIME_LEN], estimated[S_TIME_LEN];
    const char *service = s_or (st->service, "express");
    if (!st->status_code || !*st->status_code)
        fail_msg ("fake carrier: a DHL state needs a statusCode");
    int64_t at = st->at_ms ? st->at_ms : s_now (self);
    s_iso_utc (at, stamp);
    s_iso_utc (st->estimated_ms, estimated);
    const char *v[DHL_FIELDS] = {
        [DHL_SERVICE] = service,
        [DHL_CODE] = st->status_code,
        [DHL_STATUS] = st->status,
        [DHL_DESCRIPTION] = st->description,
        [DHL_TIMESTAMP] = stamp,
        [DHL_LOCATION] = st->location,
        [DHL_ESTIMATED] = estimated,
        [DHL_ORIGIN] = st->origin,
        [DHL_ORIGIN_COUNTRY] = st->origin_country,
        [DHL_DESTINATION] = st->destination,
        [DHL_DESTINATION_COUNTRY] = st->destination_country,
    };
    s_put (self, RT_FC_DHL, &number, 1, service, fc_state_new (at, v, DHL_FIELDS));
}

void
rt_fake_carrier_ups_set (rt_fake_carrier_t *self, const char *number, const rt_fc_ups_state_t *st)
{
    char date[S_TIME_LEN], time[S_TIME_LEN], gdate[S_TIME_LEN], gtime[S_TIME_LEN], offset[16];
    char sdd[S_TIME_LEN], rdd[S_TIME_LEN], del[S_TIME_LEN], del_time[S_TIME_LEN];
    rt_tz_local_t l;
    int64_t y;
    int mo, d, h, mi, s;
    if (!st->type || !*st->type)
        fail_msg ("fake carrier: a UPS state needs a status type");
    int64_t at = st->at_ms ? st->at_ms : s_now (self);
    char err[256] = "";
    pthread_mutex_lock (&self->lock);
    const rt_tz_t *tz = fc_zone (self, st->tz, err, sizeof err);
    pthread_mutex_unlock (&self->lock);
    if (!tz)
        fail_msg ("fake carrier: zone %s: %s", s_or (st->tz, "UTC"), err);
    s_ups_local (tz, at, date, time);
    s_ups_local (tz, st->scheduled_ms, sdd, NULL);
    s_ups_local (tz, st->rescheduled_ms, rdd, NULL);
    s_ups_local (tz, st->delivered_ms, del, del_time);
    s_utc (at, &y, &mo, &d, &h, &mi, &s);
    snprintf (gdate, sizeof gdate, "%04lld%02d%02d", (long long)y, mo, d);
    snprintf (gtime, sizeof gtime, "%02d:%02d:%02d", h, mi, s);
    s_local (tz, at, &l);
    snprintf (offset, sizeof offset, "%c%02d:%02d", l.offset_s < 0 ? '-' : '+',
              abs (l.offset_s) / 3600, abs (l.offset_s) / 60 % 60);
    const char *v[UPS_FIELDS] = {
        [UPS_TYPE] = st->type,
        [UPS_CODE] = st->code,
        [UPS_STATUS_CODE] = st->status_code,
        [UPS_DESCRIPTION] = st->description,
        [UPS_SIMPLIFIED] = s_or (st->simplified, st->description),
        [UPS_DATE] = date,
        [UPS_TIME] = time,
        [UPS_GMT_DATE] = gdate,
        [UPS_GMT_TIME] = gtime,
        [UPS_GMT_OFFSET] = offset,
        [UPS_CITY] = st->city,
        [UPS_PROVINCE] = st->province,
        [UPS_COUNTRY] = st->country,
        [UPS_SDD] = sdd,
        [UPS_RDD] = rdd,
        [UPS_DEL] = del,
        [UPS_DEL_TIME] = del_time,
    };
    s_put (self, RT_FC_UPS, &number, 1, NULL, fc_state_new (at, v, UPS_FIELDS));
}
