/*
 * shipment: registration (shipment.h). The checks run before any SQL, so a
 * refusal names its reason and writes nothing; the insert is one statement
 * that yields to the row already there (ON CONFLICT DO NOTHING), and the
 * id of that row is read back, so two replicas registering the same parcel
 * at once end with one row.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "carrier.h"
#include "rt_log.h"
#include "rt_phone.h"
#include "rt_uuid.h"
#include "shipment.h"

#define S_NUMBER_MAX 64

static const char *s_insert_sql =
    "INSERT INTO tracking.shipments (id, order_id, customer_id, carrier, account,"
    " tracking_number, service, phone, shipped_at, promised_by, origin_city, destination_city,"
    " news_at, next_poll_at)"
    " VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8, $9::bigint, NULLIF($10, '0')::bigint,"
    " $11, $12, $13::bigint, $13::bigint)"
    " ON CONFLICT DO NOTHING RETURNING id";

/* The row a conflict yielded to: the same parcel, or a shipment id already
 * taken by another parcel (which the caller hears as a refusal). */
static const char *s_known_sql =
    "SELECT id, carrier = $2 AND tracking_number = $3 AND service = $4 FROM tracking.shipments"
    " WHERE (carrier = $2 AND tracking_number = $3 AND service = $4) OR id = $1"
    " ORDER BY (carrier = $2 AND tracking_number = $3 AND service = $4) DESC LIMIT 1";

static const char *s_account_sql = "SELECT carrier FROM tracking.accounts WHERE id = $1";

static const char *
s_str (const char *s)
{
    return s ? s : "";
}

/* The number as carriers print it, without the spaces and dashes people
 * type into it. -1 when it does not fit. */
static int
s_number (const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-' || *p == '\t')
            continue;
        if (n + 1 >= cap)
            return -1;
        out[n++] = *p;
    }
    out[n] = '\0';
    return 0;
}

/* The list of carrier names, for a refusal that names what is known. */
static void
s_known_carriers (char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; carrier_all[i] && n < cap; i++) {
        int w = snprintf (out + n, cap - n, "%s%s", i ? ", " : "", carrier_all[i]->name);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

static shipment_result_t s_refuse (char *why, size_t whylen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static shipment_result_t
s_refuse (char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, whylen, fmt, ap);
    va_end (ap);
    return SHIPMENT_REFUSED;
}

shipment_result_t
shipment_register (rt_db_t *db, const shipment_spec_t *spec, int64_t now_ms, char *id, char *why,
                   size_t whylen)
{
    const carrier_t *carrier = carrier_find (s_str (spec->carrier));
    char number[S_NUMBER_MAX], digits[RT_PHONE_E164_MAX + 1] = "", phone_why[128] = "";
    char known[128], shipped[24], promised[24], now[24], made[RT_UUID_STR_LEN + 1];
    const char *sid = s_str (spec->id), *account = s_str (spec->account);
    PGresult *res;
    shipment_result_t rc = SHIPMENT_DB_ERROR;

    id[0] = '\0';
    if (!carrier) {
        s_known_carriers (known, sizeof known);
        return s_refuse (why, whylen, "unknown carrier \"%.40s\" (known: %s)",
                         s_str (spec->carrier), known);
    }
    if (s_number (s_str (spec->tracking_number), number, sizeof number) != 0 || !number[0])
        return s_refuse (why, whylen, "%s: the tracking number is empty or too long",
                         carrier->display);
    if (carrier->number_check (number, phone_why, sizeof phone_why) != 0)
        return s_refuse (why, whylen, "%s: %s", number, phone_why);
    if (strlen (sid) >= SHIPMENT_ID_MAX)
        return s_refuse (why, whylen, "the shipment id is longer than %d bytes",
                         SHIPMENT_ID_MAX - 1);
    {
        /* Indexed or shown text has a bound, so that no field a shop sends
         * can fail the row's insert (an index entry has a size limit) and
         * hold every OrderShipped after it. */
        const struct {
            const char *name, *value;
        } fields[] = {{"order id", spec->order_id},
                      {"customer id", spec->customer_id},
                      {"service", spec->service},
                      {"origin city", spec->origin_city},
                      {"destination city", spec->destination_city}};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            if (strlen (s_str (fields[i].value)) > SHIPMENT_FIELD_MAX)
                return s_refuse (why, whylen, "the %s is longer than %d bytes", fields[i].name,
                                 SHIPMENT_FIELD_MAX);
        }
    }
    if (spec->phone && spec->phone[0]) {
        char e164[RT_PHONE_E164_MAX + 1];
        if (rt_phone_normalize (spec->phone, "UA", e164, phone_why, sizeof phone_why) != 0)
            return s_refuse (why, whylen, "the recipient's phone: %s", phone_why);
        snprintf (digits, sizeof digits, "%s", e164 + 1); /* Nova Poshta takes digits alone */
    }
    if (account[0]) {
        const char *p[] = {account};
        res = rt_db_exec_params (db, s_account_sql, 1, p);
        if (!res)
            return SHIPMENT_DB_ERROR;
        if (PQntuples (res) == 0 || strcmp (PQgetvalue (res, 0, 0), carrier->name) != 0) {
            PQclear (res);
            return s_refuse (why, whylen, "no %s account \"%.63s\"", carrier->display, account);
        }
        PQclear (res);
    }
    if (!sid[0]) {
        rt_uuid_t u = rt_uuid_v7 ();
        rt_uuid_format (&u, made);
        sid = made;
    }
    snprintf (shipped, sizeof shipped, "%lld",
              (long long)(spec->shipped_at_ms > 0 ? spec->shipped_at_ms : now_ms));
    snprintf (promised, sizeof promised, "%lld",
              (long long)(spec->promised_by_ms > 0 ? spec->promised_by_ms : 0));
    snprintf (now, sizeof now, "%lld", (long long)now_ms);
    {
        const char *p[] = {sid,
                           s_str (spec->order_id),
                           s_str (spec->customer_id),
                           carrier->name,
                           account,
                           number,
                           s_str (spec->service),
                           digits,
                           shipped,
                           promised,
                           s_str (spec->origin_city),
                           s_str (spec->destination_city),
                           now};
        res = rt_db_exec_params (db, s_insert_sql, 13, p);
    }
    if (!res)
        return SHIPMENT_DB_ERROR;
    if (PQntuples (res) == 1) {
        snprintf (id, SHIPMENT_ID_MAX, "%s", PQgetvalue (res, 0, 0));
        PQclear (res);
        return SHIPMENT_CREATED;
    }
    PQclear (res);
    {
        const char *p[] = {sid, carrier->name, number, s_str (spec->service)};
        res = rt_db_exec_params (db, s_known_sql, 4, p);
    }
    if (!res)
        return SHIPMENT_DB_ERROR;
    if (PQntuples (res) == 0) {
        /* The conflicting row went away between the two statements (it
         * cannot: nothing deletes shipments); say it as a retry. */
        rc = SHIPMENT_DB_ERROR;
    } else if (strcmp (PQgetvalue (res, 0, 1), "t") == 0) {
        snprintf (id, SHIPMENT_ID_MAX, "%s", PQgetvalue (res, 0, 0));
        rc = SHIPMENT_KNOWN;
    } else {
        rc = s_refuse (why, whylen, "the shipment id \"%.60s\" is another parcel's", sid);
    }
    PQclear (res);
    return rc;
}
