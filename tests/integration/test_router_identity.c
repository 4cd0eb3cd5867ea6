/*
 * routerd's identity core against a real PostgreSQL: the seed's story (an
 * Instagram question, a phone order, a Messenger message with the number
 * typed, an SMS, WhatsApp and a Telegram contact share from that number:
 * which are one customer and which only a suggestion), a merge and its undo
 * putting identities, points and the shop id back exactly, with
 * CustomerMerged and CustomerUnmerged in the outbox; two shop ids never
 * merged; an undo a later merge depends on refused; two connections
 * resolving the same proven phone or the same identity at once ending
 * with one customer; a merged customer resolving to its survivor; text in
 * any script and SQL- or HTML-looking values stored verbatim; an operator's
 * edit of the card going out as CustomerUpserted; a round's known
 * identities looked up together, leaving to the rules what they decide.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "identity.h"
#include "retain/v1/customer.pb-c.h"
#include "rt_bus.h"
#include "rt_db.h"
#include "rt_test.h"
#include "rt_test_router.h"

static rt_test_router_t s_f;

/* --- helpers --- */

static int
s_setup (void **state)
{
    static const rt_test_router_opts_t opts = {.second = true};
    (void)state;
    rt_test_router_open (&s_f, "router_identity", &opts);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_router_close (&s_f);
    return 0;
}

/* Each test starts from an empty crm and outbox. */
static int
s_clean (void **state)
{
    (void)state;
    rt_test_router_clean (&s_f);
    return 0;
}

/* An input with a channel identity (or none for CHANNEL_UNSPECIFIED). */
static identity_input_t
s_input (Retain__V1__Channel channel, const char *inbox, const char *user)
{
    identity_input_t in;
    memset (&in, 0, sizeof in);
    in.channel = channel;
    in.inbox = inbox;
    in.external_user_id = user;
    return in;
}

static void
s_point (identity_input_t *in, identity_point_kind_t kind, const char *value,
         identity_source_t source, const char *seen_in)
{
    assert_true (in->npoints < IDENTITY_MAX_POINTS);
    in->points[in->npoints].kind = kind;
    in->points[in->npoints].value = value;
    in->points[in->npoints].source = source;
    in->points[in->npoints].seen_in = seen_in;
    in->npoints++;
}

/* Resolves `in` in a transaction of its own on db, which must succeed. */
static identity_result_t
s_resolve_on (rt_db_t *db, const identity_input_t *in)
{
    identity_result_t out;
    char err[512] = "";
    identity_status_t st;
    assert_int_equal (rt_db_begin (db), 0);
    st = identity_resolve (db, in, &out, err, sizeof err);
    if (st != IDENTITY_OK) {
        rt_db_rollback (db);
        fail_msg ("identity_resolve: %d %s", st, err);
    }
    assert_int_equal (rt_db_commit (db), 0);
    assert_int_equal (strlen (out.customer_id), IDENTITY_ID_LEN);
    return out;
}

static identity_result_t
s_resolve (const identity_input_t *in)
{
    return s_resolve_on (s_f.db, in);
}

/* A query with one text parameter returning one number. */
static long long
s_count1 (const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    PGresult *res = PQexecParams (s_f.pg, sql, 1, NULL, v, NULL, NULL, 0);
    long long n;
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQerrorMessage (s_f.pg));
    n = atoll (PQgetvalue (res, 0, 0));
    PQclear (res);
    return n;
}

/* The first cell of a query with up to two text parameters, copied into
 * out ("" for no row or NULL). */
static void
s_text (char *out, size_t outlen, const char *sql, const char *p1, const char *p2)
{
    const char *v[2] = {p1, p2};
    PGresult *res = PQexecParams (s_f.pg, sql, p2 ? 2 : 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQerrorMessage (s_f.pg));
    snprintf (out, outlen, "%s", PQntuples (res) > 0 ? PQgetvalue (res, 0, 0) : "");
    PQclear (res);
}

/* Everything crm holds of one customer, as one text: profile, identities,
 * points, in a fixed order. Owned. */
static char *
s_snapshot (const char *customer)
{
    static const char *sql =
        "SELECT concat_ws(' | ',"
        " (SELECT concat_ws(',', COALESCE(shop_customer_id, '-'), name,"
        "  COALESCE(merged_into::text, '-')) FROM crm.customers WHERE id = $1::uuid),"
        " (SELECT string_agg(concat_ws(',', channel, inbox, external_user_id), ';'"
        "  ORDER BY channel, inbox, external_user_id) FROM crm.identities"
        "  WHERE customer_id = $1::uuid),"
        " (SELECT string_agg(concat_ws(',', kind, value, proven, proven_by, created_at), ';'"
        "  ORDER BY kind, value, proven) FROM crm.contact_points WHERE customer_id = $1::uuid))";
    char buf[8192];
    s_text (buf, sizeof buf, sql, customer, NULL);
    return strdup (buf);
}

/* The envelopes in outbox.pending of `type`, in order (no busd drains them
 * here). Owned: free each with retain__v1__envelope__free_unpacked. */
static size_t
s_outbox (const char *type, Retain__V1__Envelope **out, size_t max)
{
    PGresult *res = PQexec (s_f.pg, "SELECT envelope FROM outbox.pending ORDER BY id");
    size_t n = 0;
    int i;
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    for (i = 0; i < PQntuples (res); i++) {
        size_t len;
        unsigned char *bytes =
            PQunescapeBytea ((const unsigned char *)PQgetvalue (res, i, 0), &len);
        Retain__V1__Envelope *env = retain__v1__envelope__unpack (NULL, len, bytes);
        PQfreemem (bytes);
        assert_non_null (env);
        if (strcmp (env->type, type) == 0 && n < max)
            out[n++] = env;
        else
            retain__v1__envelope__free_unpacked (env, NULL);
    }
    PQclear (res);
    return n;
}

static void
s_outbox_free (Retain__V1__Envelope **envs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        retain__v1__envelope__free_unpacked (envs[i], NULL);
}

/* Merges in a transaction of its own; returns the status (committed when
 * OK, rolled back otherwise, after checking the transaction was still
 * usable: a refusal writes nothing). */
static identity_status_t
s_merge (const char *survivor, const char *absorbed, const char *by, char *merge_id, char *err,
         size_t errlen)
{
    identity_status_t st;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    st = identity_merge (s_f.db, survivor, absorbed, by, "same person", "{\"phone\":\"shared\"}",
                         NULL, merge_id, err, errlen);
    if (st == IDENTITY_OK || st != IDENTITY_ERR_DB)
        assert_int_equal (rt_db_commit (s_f.db), 0);
    else
        rt_db_rollback (s_f.db);
    return st;
}

static identity_status_t
s_unmerge (const char *merge_id, char *err, size_t errlen)
{
    identity_status_t st;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    st = identity_unmerge (s_f.db, merge_id, "op-9", NULL, err, errlen);
    if (st == IDENTITY_OK || st != IDENTITY_ERR_DB)
        assert_int_equal (rt_db_commit (s_f.db), 0);
    else
        rt_db_rollback (s_f.db);
    return st;
}

/* --- the seed's story --- */

static void
test_story_across_channels (void **state)
{
    identity_input_t ig, order, fb, sms, wa, tg, order2;
    identity_result_t r_ig, r_order, r_fb, r_sms, r_wa, r_tg, r_ig2, r_order2;
    char buf[256];
    (void)state;

    /* A question under an Instagram post: nobody known. */
    ig = s_input (RETAIN__V1__CHANNEL__INSTAGRAM, "shop-ig", "ig-17841");
    ig.name = "Олена";
    r_ig = s_resolve (&ig);
    assert_true (r_ig.is_new);
    assert_int_equal (r_ig.rule, IDENTITY_BY_NEW);

    /* An order by phone: the shop's account and the number it took. */
    order = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    order.shop_customer_id = "shop-501";
    order.name = "Olena Kovalenko";
    s_point (&order, IDENTITY_POINT_PHONE, "067 111 22 33", IDENTITY_SOURCE_SHOP, "order 1001");
    s_point (&order, IDENTITY_POINT_EMAIL, " Olena.K@Example.COM ", IDENTITY_SOURCE_SHOP,
             "order 1001");
    r_order = s_resolve (&order);
    assert_true (r_order.is_new);
    assert_string_not_equal (r_order.customer_id, r_ig.customer_id);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.contact_points WHERE customer_id ="
                                " $1::uuid AND NOT proven AND proven_by = 'shop'"
                                " AND value IN ('+380671112233', 'olena.k@example.com')",
                                r_order.customer_id),
                      2);

    /* Messenger, the number typed in the text: a suggestion, not a merge. */
    fb = s_input (RETAIN__V1__CHANNEL__MESSENGER, "shop-page", "psid-7");
    s_point (&fb, IDENTITY_POINT_PHONE, "+380 (67) 111-22-33", IDENTITY_SOURCE_TEXT,
             "messenger message m-1");
    r_fb = s_resolve (&fb);
    assert_true (r_fb.is_new);
    assert_string_not_equal (r_fb.customer_id, r_order.customer_id);
    assert_string_not_equal (r_fb.customer_id, r_ig.customer_id);
    assert_int_equal (r_fb.nsuggestions, 1);
    s_text (buf, sizeof buf,
            "SELECT candidate_id::text || ' ' || (evidence->>'phone') || ' '"
            " || (evidence->>'seen_in') FROM crm.merge_suggestions WHERE id = $1::uuid",
            r_fb.suggestions[0], NULL);
    {
        char want[256];
        snprintf (want, sizeof want, "%s +380671112233 messenger message m-1", r_order.customer_id);
        assert_string_equal (buf, want);
    }

    /* An SMS from that number proves it: the order's customer. */
    sms = s_input (RETAIN__V1__CHANNEL__SMS, "shop-sms", "+380671112233");
    s_point (&sms, IDENTITY_POINT_PHONE, "+380671112233", IDENTITY_SOURCE_SMS, "sms s-1");
    r_sms = s_resolve (&sms);
    assert_false (r_sms.is_new);
    assert_string_equal (r_sms.customer_id, r_order.customer_id);
    assert_int_equal (r_sms.rule, IDENTITY_BY_SHOP_POINT);
    /* The pair with Messenger is one open suggestion still, not two. */
    assert_int_equal (r_sms.nsuggestions, 0);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.merge_suggestions"
                                " WHERE resolved_at IS NULL AND $1::uuid IN (customer_id,"
                                " candidate_id)",
                                r_order.customer_id),
                      1);
    s_text (buf, sizeof buf,
            "SELECT customer_id::text || ' ' || proven_by FROM crm.contact_points"
            " WHERE kind = 'phone' AND value = $1 AND proven",
            "+380671112233", NULL);
    {
        char want[128];
        snprintf (want, sizeof want, "%s sms", r_order.customer_id);
        assert_string_equal (buf, want);
    }
    /* The shop's claim of it has served: one row for the number. */
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.contact_points WHERE customer_id ="
                                " $1::uuid AND kind = 'phone'",
                                r_order.customer_id),
                      1);

    /* WhatsApp and a Telegram contact share of the proven number. */
    wa = s_input (RETAIN__V1__CHANNEL__WHATSAPP, "shop-wa", "380671112233");
    s_point (&wa, IDENTITY_POINT_PHONE, "380671112233", IDENTITY_SOURCE_WHATSAPP, NULL);
    wa.default_country = "ZZ";
    r_wa = s_resolve (&wa);
    assert_string_equal (r_wa.customer_id, r_order.customer_id);
    assert_int_equal (r_wa.rule, IDENTITY_BY_PROVEN_POINT);
    tg = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "shop-bot", "5123");
    s_point (&tg, IDENTITY_POINT_PHONE, "380671112233", IDENTITY_SOURCE_TELEGRAM_CONTACT,
             "telegram contact");
    tg.default_country = "ZZ";
    r_tg = s_resolve (&tg);
    assert_string_equal (r_tg.customer_id, r_order.customer_id);
    assert_int_equal (r_tg.rule, IDENTITY_BY_PROVEN_POINT);

    /* The Instagram customer writes again: their identity. */
    r_ig2 = s_resolve (&ig);
    assert_string_equal (r_ig2.customer_id, r_ig.customer_id);
    assert_int_equal (r_ig2.rule, IDENTITY_BY_IDENTITY);
    assert_false (r_ig2.is_new);

    /* The next order of that shop account. */
    order2 = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    order2.shop_customer_id = "shop-501";
    s_point (&order2, IDENTITY_POINT_PHONE, "0671112233", IDENTITY_SOURCE_SHOP, "order 1002");
    r_order2 = s_resolve (&order2);
    assert_string_equal (r_order2.customer_id, r_order.customer_id);
    assert_int_equal (r_order2.rule, IDENTITY_BY_SHOP_ID);

    /* Instagram, Messenger and the buyer: three people as far as retain
     * can prove; the buyer holds the SMS, WhatsApp and Telegram
     * identities. */
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.customers"), 3);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.identities WHERE customer_id ="
                                " $1::uuid",
                                r_order.customer_id),
                      3);
    /* Nothing was merged by resolution. */
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.merges"), 0);
}

/* A proof arriving first, the shop's order after: one customer too. */
static void
test_order_after_proof (void **state)
{
    identity_input_t wa, order, other;
    identity_result_t r_wa, r_order, r_other;
    char shop[64];
    (void)state;

    wa = s_input (RETAIN__V1__CHANNEL__WHATSAPP, "shop-wa", "380501234567");
    s_point (&wa, IDENTITY_POINT_PHONE, "+380501234567", IDENTITY_SOURCE_WHATSAPP, NULL);
    r_wa = s_resolve (&wa);
    order = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    order.shop_customer_id = "shop-9";
    s_point (&order, IDENTITY_POINT_PHONE, "+380501234567", IDENTITY_SOURCE_SHOP, "order 9");
    r_order = s_resolve (&order);
    assert_string_equal (r_order.customer_id, r_wa.customer_id);
    assert_int_equal (r_order.rule, IDENTITY_BY_SHOP_POINT);
    s_text (shop, sizeof shop, "SELECT shop_customer_id FROM crm.customers WHERE id = $1::uuid",
            r_wa.customer_id, NULL);
    assert_string_equal (shop, "shop-9");

    /* Another shop account ordering with that number is not joined to
     * them, and makes no suggestion (two shop ids are never merged). */
    other = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    other.shop_customer_id = "shop-10";
    s_point (&other, IDENTITY_POINT_PHONE, "+380501234567", IDENTITY_SOURCE_SHOP, "order 10");
    r_other = s_resolve (&other);
    assert_true (r_other.is_new);
    assert_string_not_equal (r_other.customer_id, r_wa.customer_id);
    assert_int_equal (r_other.nsuggestions, 0);
}

/* --- merge and undo --- */

static void
test_merge_and_undo (void **state)
{
    identity_input_t a, b, b2;
    identity_result_t ra, rb, r;
    char merge_id[IDENTITY_ID_LEN + 1], again[IDENTITY_ID_LEN + 1], err[512], buf[256];
    char *snap_a, *snap_b, *after_a, *after_b;
    Retain__V1__Envelope *envs[4];
    size_t n;
    (void)state;

    /* A: Telegram, a proven phone, an e-mail typed. */
    a = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "shop-bot", "777");
    a.name = "Andrii";
    s_point (&a, IDENTITY_POINT_PHONE, "+380931112233", IDENTITY_SOURCE_TELEGRAM_CONTACT, NULL);
    s_point (&a, IDENTITY_POINT_EMAIL, "both@example.com", IDENTITY_SOURCE_TEXT, "telegram");
    ra = s_resolve (&a);
    /* B: a shop account with its own phone, then Instagram (ingest knew
     * the customer), typing A's phone and the same e-mail. */
    b = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    b.shop_customer_id = "shop-77";
    b.name = "Bohdan";
    s_point (&b, IDENTITY_POINT_PHONE, "+380661234567", IDENTITY_SOURCE_SHOP, "order 77");
    rb = s_resolve (&b);
    b2 = s_input (RETAIN__V1__CHANNEL__INSTAGRAM, "shop-ig", "ig-555");
    b2.customer_id = rb.customer_id;
    s_point (&b2, IDENTITY_POINT_PHONE, "+380931112233", IDENTITY_SOURCE_TEXT, "instagram ig-m-1");
    s_point (&b2, IDENTITY_POINT_EMAIL, "both@example.com", IDENTITY_SOURCE_TEXT, "instagram");
    r = s_resolve (&b2);
    assert_string_equal (r.customer_id, rb.customer_id);
    assert_int_equal (r.rule, IDENTITY_BY_CUSTOMER_ID);
    assert_int_equal (r.nsuggestions, 1);

    snap_a = s_snapshot (ra.customer_id);
    snap_b = s_snapshot (rb.customer_id);
    rt_test_pg_exec (s_f.pg, "DELETE FROM outbox.pending");

    assert_int_equal (s_merge (ra.customer_id, rb.customer_id, "op-1", merge_id, err, sizeof err),
                      IDENTITY_OK);
    assert_int_equal (strlen (merge_id), IDENTITY_ID_LEN);
    /* Everything of B's is A's; B's typed e-mail was A's too, so A holds
     * it once; the shop id came along. */
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.identities WHERE customer_id ="
                                " $1::uuid",
                                rb.customer_id),
                      0);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.contact_points WHERE customer_id ="
                                " $1::uuid",
                                rb.customer_id),
                      0);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.identities WHERE customer_id ="
                                " $1::uuid",
                                ra.customer_id),
                      2);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.contact_points WHERE customer_id ="
                                " $1::uuid AND value = 'both@example.com'",
                                ra.customer_id),
                      1);
    s_text (buf, sizeof buf,
            "SELECT (SELECT shop_customer_id FROM crm.customers WHERE id = $1::uuid) || ' '"
            " || (SELECT merged_into::text FROM crm.customers WHERE id = $2::uuid)",
            ra.customer_id, rb.customer_id);
    {
        char want[128];
        snprintf (want, sizeof want, "shop-77 %s", ra.customer_id);
        assert_string_equal (buf, want);
    }
    s_text (buf, sizeof buf,
            "SELECT resolution FROM crm.merge_suggestions WHERE customer_id = $1::uuid",
            rb.customer_id, NULL);
    assert_string_equal (buf, "merged");
    s_text (buf, sizeof buf,
            "SELECT by_operator || ' ' || reason || ' ' || (evidence->>'phone') || ' '"
            " || jsonb_array_length(moved->'identities') || ' '"
            " || jsonb_array_length(moved->'points') || ' ' || (moved->>'shop_customer_id')"
            " FROM crm.merges WHERE id = $1::uuid",
            merge_id, NULL);
    assert_string_equal (buf, "op-1 same person shared 1 3 shop-77");

    n = s_outbox ("CustomerMerged", envs, 4);
    assert_int_equal (n, 1);
    {
        Retain__V1__CustomerMerged *m = (Retain__V1__CustomerMerged *)rt_envelope_payload (envs[0]);
        assert_non_null (m);
        assert_string_equal (envs[0]->stream, "customer");
        assert_string_equal (envs[0]->key, ra.customer_id);
        assert_string_equal (m->merge_id, merge_id);
        assert_string_equal (m->survivor_id, ra.customer_id);
        assert_string_equal (m->absorbed_id, rb.customer_id);
        assert_string_equal (m->by, "op-1");
        assert_string_equal (m->reason, "same person");
        assert_true (m->merged_at > 0);
        protobuf_c_message_free_unpacked (&m->base, NULL);
    }
    s_outbox_free (envs, n);

    /* B's Instagram and B's shop account now find A. */
    r = s_resolve (&b2);
    assert_string_equal (r.customer_id, ra.customer_id);
    r = s_resolve (&b);
    assert_string_equal (r.customer_id, ra.customer_id);
    assert_int_equal (r.rule, IDENTITY_BY_SHOP_ID);
    /* A merged customer cannot be merged again, nor edited. */
    assert_int_equal (s_merge (ra.customer_id, rb.customer_id, "op-1", again, err, sizeof err),
                      IDENTITY_ERR_MERGED);
    assert_non_null (strstr (err, "merged into"));
    assert_string_equal (again, "");

    /* The undo puts back exactly what moved. */
    rt_test_pg_exec (s_f.pg, "DELETE FROM outbox.pending");
    assert_int_equal (s_unmerge (merge_id, err, sizeof err), IDENTITY_OK);
    after_a = s_snapshot (ra.customer_id);
    after_b = s_snapshot (rb.customer_id);
    assert_string_equal (after_a, snap_a);
    assert_string_equal (after_b, snap_b);
    s_text (buf, sizeof buf, "SELECT undone_by FROM crm.merges WHERE id = $1::uuid", merge_id,
            NULL);
    assert_string_equal (buf, "op-9");
    n = s_outbox ("CustomerUnmerged", envs, 4);
    assert_int_equal (n, 1);
    {
        Retain__V1__CustomerUnmerged *u =
            (Retain__V1__CustomerUnmerged *)rt_envelope_payload (envs[0]);
        assert_non_null (u);
        assert_string_equal (u->merge_id, merge_id);
        assert_string_equal (u->survivor_id, ra.customer_id);
        assert_string_equal (u->absorbed_id, rb.customer_id);
        assert_string_equal (u->by, "op-9");
        protobuf_c_message_free_unpacked (&u->base, NULL);
    }
    s_outbox_free (envs, n);
    /* B's identities are B's again. */
    r = s_resolve (&b2);
    assert_string_equal (r.customer_id, rb.customer_id);

    /* An undone merge stays undone. */
    assert_int_equal (s_unmerge (merge_id, err, sizeof err), IDENTITY_ERR_UNDONE);
    assert_int_equal (s_unmerge ("01890000-0000-7000-8000-000000000000", err, sizeof err),
                      IDENTITY_ERR_NOT_FOUND);
    free (snap_a);
    free (snap_b);
    free (after_a);
    free (after_b);
}

static void
test_never_two_shop_ids (void **state)
{
    identity_input_t a, b;
    identity_result_t ra, rb;
    char merge_id[IDENTITY_ID_LEN + 1], err[512];
    (void)state;

    a = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    a.shop_customer_id = "shop-1";
    ra = s_resolve (&a);
    b = s_input (RETAIN__V1__CHANNEL__VIBER, "shop-viber", "v-1");
    b.shop_customer_id = "shop-2";
    rb = s_resolve (&b);
    rt_test_pg_exec (s_f.pg, "DELETE FROM outbox.pending");

    assert_int_equal (s_merge (ra.customer_id, rb.customer_id, "op-1", merge_id, err, sizeof err),
                      IDENTITY_ERR_SHOP_IDS);
    assert_non_null (strstr (err, "shop-1"));
    assert_non_null (strstr (err, "shop-2"));
    assert_string_equal (merge_id, "");
    /* Nothing moved, nothing recorded, nothing sent. */
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.identities WHERE customer_id ="
                                " $1::uuid",
                                rb.customer_id),
                      1);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.merges"), 0);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM outbox.pending"), 0);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.customers"
                                               " WHERE merged_into IS NOT NULL"),
                      0);

    /* Nor a customer with itself, nor an id that is not one. */
    assert_int_equal (s_merge (ra.customer_id, ra.customer_id, "op-1", merge_id, err, sizeof err),
                      IDENTITY_ERR_SAME);
    assert_int_equal (s_merge (ra.customer_id, "'; DROP TABLE crm.customers; --", "op-1", merge_id,
                               err, sizeof err),
                      IDENTITY_ERR_INVALID);
    assert_int_equal (s_merge (ra.customer_id, "01890000-0000-7000-8000-000000000000", "op-1",
                               merge_id, err, sizeof err),
                      IDENTITY_ERR_NOT_FOUND);
}

static void
test_undo_refused_when_a_later_merge_depends (void **state)
{
    identity_input_t in;
    identity_result_t r[3];
    char m1[IDENTITY_ID_LEN + 1], m2[IDENTITY_ID_LEN + 1], err[512];
    const char *users[3] = {"dep-a", "dep-b", "dep-c"};
    int i;
    (void)state;

    for (i = 0; i < 3; i++) {
        in = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "shop-bot", users[i]);
        r[i] = s_resolve (&in);
    }
    /* b into a, then a into c: the first merge's items are on c now. */
    assert_int_equal (s_merge (r[0].customer_id, r[1].customer_id, "op", m1, err, sizeof err),
                      IDENTITY_OK);
    assert_int_equal (s_merge (r[2].customer_id, r[0].customer_id, "op", m2, err, sizeof err),
                      IDENTITY_OK);
    /* b, merged twice over, resolves to c. */
    in = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    in.customer_id = r[1].customer_id;
    {
        identity_result_t rr = s_resolve (&in);
        assert_string_equal (rr.customer_id, r[2].customer_id);
        assert_true (rr.followed_merge);
    }
    assert_int_equal (s_unmerge (m1, err, sizeof err), IDENTITY_ERR_DEPENDS);
    assert_non_null (strstr (err, m2));
    assert_int_equal (s_unmerge (m2, err, sizeof err), IDENTITY_OK);
    assert_int_equal (s_unmerge (m1, err, sizeof err), IDENTITY_OK);
    for (i = 0; i < 3; i++) {
        identity_result_t rr;
        in = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "shop-bot", users[i]);
        rr = s_resolve (&in);
        assert_string_equal (rr.customer_id, r[i].customer_id);
    }
}

static void
test_merged_customer_resolves_to_survivor (void **state)
{
    identity_input_t a, b, by_id;
    identity_result_t ra, rb, r;
    char merge_id[IDENTITY_ID_LEN + 1], err[512];
    (void)state;

    a = s_input (RETAIN__V1__CHANNEL__EMAIL, "support", "anna@example.com");
    s_point (&a, IDENTITY_POINT_EMAIL, "Anna@Example.com", IDENTITY_SOURCE_EMAIL_INBOUND, NULL);
    ra = s_resolve (&a);
    b = s_input (RETAIN__V1__CHANNEL__WEBCHAT, "site", "visitor-3");
    rb = s_resolve (&b);
    assert_string_not_equal (ra.customer_id, rb.customer_id);
    assert_int_equal (s_merge (ra.customer_id, rb.customer_id, NULL, merge_id, err, sizeof err),
                      IDENTITY_OK);

    /* An event naming the absorbed id gets the survivor, and says so. */
    by_id = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    by_id.customer_id = rb.customer_id;
    r = s_resolve (&by_id);
    assert_string_equal (r.customer_id, ra.customer_id);
    assert_true (r.followed_merge);
    assert_false (r.is_new);
    /* A row that still names the absorbed customer (as one written by a
     * replica that resolved while the merge committed) is followed too. */
    rt_test_pg_exec (s_f.pg, "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                             " customer_id) SELECT 'viber', 'late', 'late-1', absorbed"
                             " FROM crm.merges");
    b = s_input (RETAIN__V1__CHANNEL__VIBER, "late", "late-1");
    r = s_resolve (&b);
    assert_string_equal (r.customer_id, ra.customer_id);
    assert_true (r.followed_merge);
    assert_int_equal (r.rule, IDENTITY_BY_IDENTITY);
    /* An e-mail proven by an inbound mail finds the survivor, whatever
     * its case. */
    a = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    s_point (&a, IDENTITY_POINT_EMAIL, "ANNA@example.COM", IDENTITY_SOURCE_EMAIL_INBOUND, NULL);
    r = s_resolve (&a);
    assert_string_equal (r.customer_id, ra.customer_id);
    assert_int_equal (r.rule, IDENTITY_BY_PROVEN_POINT);
}

/* --- concurrency --- */

/* A resolution on the second replica's connection, in a thread, inside a
 * transaction the thread commits. */
typedef struct {
    identity_input_t in;   /* what it resolves */
    identity_result_t out; /* what it got */
    identity_status_t st;  /* identity_resolve's status */
    int committed;         /* rt_db_commit's result */
    char err[512];         /* its error */
} s_job_t;

static void *
s_job_run (void *arg)
{
    s_job_t *j = arg;
    if (rt_db_begin (s_f.db2) != 0) {
        j->st = IDENTITY_ERR_DB;
        return NULL;
    }
    j->st = identity_resolve (s_f.db2, &j->in, &j->out, j->err, sizeof j->err);
    j->committed = j->st == IDENTITY_OK ? rt_db_commit (s_f.db2) : -1;
    if (j->committed != 0)
        rt_db_rollback (s_f.db2);
    return NULL;
}

/* Waits until the second replica's session waits on a lock (the first's
 * uncommitted claim), 10 s at most. */
static void
s_wait_blocked (void)
{
    int64_t deadline = rt_test_now_ms () + 10000;
    while (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM pg_stat_activity"
                                    " WHERE application_name = 'router-identity-b'"
                                    " AND wait_event_type = 'Lock'") == 0) {
        if (rt_test_now_ms () > deadline)
            fail_msg ("the second replica never waited on the first's claim");
        usleep (10000);
    }
}

/* Two replicas with overlapping transactions: the first holds an
 * uncommitted claim, the second meets it, waits, and takes its customer. */
static void
s_race (const identity_input_t *first, const identity_input_t *second)
{
    identity_result_t r1;
    char err[512];
    pthread_t t;
    s_job_t job;

    memset (&job, 0, sizeof job);
    job.in = *second;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (identity_resolve (s_f.db, first, &r1, err, sizeof err), IDENTITY_OK);
    assert_true (r1.is_new);
    assert_int_equal (pthread_create (&t, NULL, s_job_run, &job), 0);
    s_wait_blocked ();
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (pthread_join (t, NULL), 0);
    if (job.st != IDENTITY_OK || job.committed != 0)
        fail_msg ("the second replica: %d %s", job.st, job.err);
    assert_string_equal (job.out.customer_id, r1.customer_id);
    assert_false (job.out.is_new);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.customers"), 1);
}

static void
test_concurrent_same_proven_phone (void **state)
{
    identity_input_t wa, call;
    (void)state;
    wa = s_input (RETAIN__V1__CHANNEL__WHATSAPP, "shop-wa", "380975556677");
    s_point (&wa, IDENTITY_POINT_PHONE, "+380975556677", IDENTITY_SOURCE_WHATSAPP, NULL);
    call = s_input (RETAIN__V1__CHANNEL__PHONE, "shop-pbx", "+380975556677");
    s_point (&call, IDENTITY_POINT_PHONE, "0975556677", IDENTITY_SOURCE_CALL, NULL);
    s_race (&wa, &call);
    /* One proven row; both identities on the one customer. */
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.contact_points"), 1);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(DISTINCT customer_id)"
                                               " FROM crm.identities"),
                      1);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.identities"), 2);
}

static void
test_concurrent_same_identity (void **state)
{
    identity_input_t tg;
    (void)state;
    tg = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "shop-bot", "race-1");
    tg.name = "Taras";
    s_race (&tg, &tg);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.identities"), 1);
}

static void
test_concurrent_same_shop_id (void **state)
{
    identity_input_t order;
    (void)state;
    order = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    order.shop_customer_id = "shop-race";
    s_race (&order, &order);
}

/* --- what people type --- */

static void
test_text_stored_verbatim (void **state)
{
    static const char *name = "Ольга 李小龍 عائشة <script>alert('x')</script> Robert'); DROP "
                              "TABLE crm.customers;-- 🎁";
    static const char *user = "'; DELETE FROM crm.identities; -- <b>&amp;</b>";
    static const char *notes = "Вимоглива: <img src=x onerror=alert(1)> \"VIP\" \\ 100% 😤";
    identity_input_t in;
    identity_result_t r;
    identity_profile_t edit;
    char buf[512], err[512];
    Retain__V1__Envelope *envs[4];
    size_t n;
    (void)state;

    in = s_input (RETAIN__V1__CHANNEL__VIBER, "магазин-viber", user);
    in.name = name;
    in.locale = "uk-UA";
    r = s_resolve (&in);
    s_text (buf, sizeof buf, "SELECT name FROM crm.customers WHERE id = $1::uuid", r.customer_id,
            NULL);
    assert_string_equal (buf, name);
    s_text (buf, sizeof buf,
            "SELECT external_user_id || '|' || inbox FROM crm.identities"
            " WHERE customer_id = $1::uuid",
            r.customer_id, NULL);
    {
        char want[512];
        snprintf (want, sizeof want, "%s|магазин-viber", user);
        assert_string_equal (buf, want);
    }
    assert_string_equal (s_resolve (&in).customer_id, r.customer_id);

    rt_test_pg_exec (s_f.pg, "DELETE FROM outbox.pending");
    memset (&edit, 0, sizeof edit);
    edit.notes = notes;
    edit.birthday = "1992-02-29";
    edit.time_zone = "Europe/Kyiv";
    edit.preferred_channel = "viber";
    edit.manager = "op-7";
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (
        identity_update_profile (s_f.db, r.customer_id, &edit, "op-7", err, sizeof err),
        IDENTITY_OK);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    s_text (buf, sizeof buf,
            "SELECT notes || '|' || birthday || '|' || time_zone || '|' || manager || '|' || name"
            " FROM crm.customers WHERE id = $1::uuid",
            r.customer_id, NULL);
    {
        char want[512];
        snprintf (want, sizeof want, "%s|1992-02-29|Europe/Kyiv|op-7|%s", notes, name);
        assert_string_equal (buf, want);
    }
    /* The card went out, so loyaltyd learns the birthday. */
    n = s_outbox ("CustomerUpserted", envs, 4);
    assert_int_equal (n, 1);
    {
        Retain__V1__CustomerUpserted *u =
            (Retain__V1__CustomerUpserted *)rt_envelope_payload (envs[0]);
        assert_non_null (u);
        assert_string_equal (envs[0]->key, r.customer_id);
        assert_string_equal (u->customer_id, r.customer_id);
        assert_string_equal (u->birthday, "1992-02-29");
        assert_string_equal (u->name, name);
        assert_string_equal (u->locale, "uk-UA");
        assert_int_equal (u->preferred_channel, RETAIN__V1__CHANNEL__VIBER);
        assert_int_equal (u->n_identities, 1);
        assert_int_equal (u->identities[0]->channel, RETAIN__V1__CHANNEL__VIBER);
        assert_string_equal (u->identities[0]->external_user_id, user);
        protobuf_c_message_free_unpacked (&u->base, NULL);
    }
    s_outbox_free (envs, n);

    /* Values the card cannot hold are refused before anything is
     * written, naming what was wrong. */
    memset (&edit, 0, sizeof edit);
    edit.birthday = "1990-02-29";
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (
        identity_update_profile (s_f.db, r.customer_id, &edit, "op-7", err, sizeof err),
        IDENTITY_ERR_INVALID);
    assert_non_null (strstr (err, "1990-02-29"));
    memset (&edit, 0, sizeof edit);
    edit.time_zone = "Mars/Olympus_Mons";
    assert_int_equal (
        identity_update_profile (s_f.db, r.customer_id, &edit, "op-7", err, sizeof err),
        IDENTITY_ERR_INVALID);
    memset (&edit, 0, sizeof edit);
    edit.preferred_channel = "pigeon";
    assert_int_equal (
        identity_update_profile (s_f.db, r.customer_id, &edit, "op-7", err, sizeof err),
        IDENTITY_ERR_INVALID);
    assert_non_null (strstr (err, "pigeon"));
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM outbox.pending"), 1);
}

/* --- someone never seen --- */

/* The known identities of a round, looked up together: an identity with
 * nothing to attach, or with the number its channel proves already proven
 * as the customer's, is found; one whose number someone else also holds,
 * whose number is typed (nothing proven), whose name would fill a blank
 * card, or that nobody has seen is left to identity_resolve, which then
 * comes to what it always did (the suggestion, the new customer). */
static void
test_seen_batch (void **state)
{
    identity_input_t in[6];
    identity_result_t out[6], a, b, c;
    bool found[6];
    char err[512] = "";
    (void)state;

    /* a: WhatsApp from +380501112233 (proven), Telegram too. */
    in[0] = s_input (RETAIN__V1__CHANNEL__WHATSAPP, "wa", "380501112233");
    s_point (&in[0], IDENTITY_POINT_PHONE, "+380501112233", IDENTITY_SOURCE_WHATSAPP, "wa 1");
    in[0].name = "Оксана";
    a = s_resolve (&in[0]);
    in[1] = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "tg", "a-tg");
    s_point (&in[1], IDENTITY_POINT_PHONE, "+380501112233", IDENTITY_SOURCE_TELEGRAM_CONTACT,
             "tg 1");
    assert_string_equal (s_resolve (&in[1]).customer_id, a.customer_id);
    /* b: WhatsApp from +380671112233; c typed that number in Instagram. */
    in[2] = s_input (RETAIN__V1__CHANNEL__WHATSAPP, "wa", "380671112233");
    s_point (&in[2], IDENTITY_POINT_PHONE, "+380671112233", IDENTITY_SOURCE_WHATSAPP, "wa 2");
    b = s_resolve (&in[2]);
    in[3] = s_input (RETAIN__V1__CHANNEL__INSTAGRAM, "ig", "c-ig");
    s_point (&in[3], IDENTITY_POINT_PHONE, "+380671112233", IDENTITY_SOURCE_TEXT, "ig 1");
    c = s_resolve (&in[3]);
    assert_string_not_equal (c.customer_id, b.customer_id);

    /* The round: a on WhatsApp (number settled), a on Telegram (nothing),
     * b on WhatsApp (c holds the number too), c typing it again, a stranger,
     * and c (no name yet) giving a name. */
    in[4] = s_input (RETAIN__V1__CHANNEL__VIBER, "vb", "stranger");
    in[5] = s_input (RETAIN__V1__CHANNEL__INSTAGRAM, "ig", "c-ig");
    in[5].name = "Ігор";
    in[1].npoints = 0;
    assert_int_equal (rt_db_begin (s_f.db), 0);
    if (identity_seen_batch (s_f.db, in, 6, out, found, err, sizeof err) != 0)
        fail_msg ("identity_seen_batch: %s", err);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_true (found[0]);
    assert_string_equal (out[0].customer_id, a.customer_id);
    assert_int_equal (out[0].rule, IDENTITY_BY_IDENTITY);
    assert_true (found[1]);
    assert_string_equal (out[1].customer_id, a.customer_id);
    assert_false (found[2]);
    assert_false (found[3]);
    assert_false (found[4]);
    assert_false (found[5]);
    /* What identity_resolve makes of those left to it is what it made. */
    assert_string_equal (s_resolve (&in[2]).customer_id, b.customer_id);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.merge_suggestions"
                                " WHERE $1::uuid IN (customer_id, candidate_id)",
                                b.customer_id),
                      1);
    assert_int_equal (strlen (s_resolve (&in[4]).customer_id), IDENTITY_ID_LEN);
    assert_string_equal (s_resolve (&in[5]).customer_id, c.customer_id);
    assert_int_equal (
        s_count1 ("SELECT count(*) FROM crm.customers WHERE id = $1::uuid AND name = 'Ігор'",
                  c.customer_id),
        1);
}

static void
test_never_seen_is_new (void **state)
{
    identity_input_t in;
    identity_result_t r;
    char err[512];
    (void)state;

    in = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "shop-bot", "never-seen-1");
    /* A number that is no number is skipped, not a reason to fail. */
    s_point (&in, IDENTITY_POINT_PHONE, "call me maybe", IDENTITY_SOURCE_TEXT, NULL);
    s_point (&in, IDENTITY_POINT_EMAIL, "not-an-address", IDENTITY_SOURCE_TEXT, NULL);
    r = s_resolve (&in);
    assert_true (r.is_new);
    assert_int_equal (r.rule, IDENTITY_BY_NEW);
    assert_false (r.followed_merge);
    assert_int_equal (r.points_refused, 2);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.identities WHERE customer_id ="
                                " $1::uuid",
                                r.customer_id),
                      1);
    assert_int_equal (s_count1 ("SELECT count(*) FROM crm.contact_points WHERE customer_id ="
                                " $1::uuid",
                                r.customer_id),
                      0);
    /* An id crm never had is no customer: the identity decides. */
    in = s_input (RETAIN__V1__CHANNEL__TELEGRAM, "shop-bot", "never-seen-2");
    in.customer_id = "01890000-0000-7000-8000-00000000abcd";
    r = s_resolve (&in);
    assert_true (r.is_new);
    assert_string_not_equal (r.customer_id, in.customer_id);
    /* An event naming nobody is refused, and the transaction is usable. */
    in = s_input (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, NULL);
    assert_int_equal (rt_db_begin (s_f.db), 0);
    assert_int_equal (identity_resolve (s_f.db, &in, &r, err, sizeof err), IDENTITY_ERR_INVALID);
    assert_int_equal (rt_db_commit (s_f.db), 0);
    assert_int_equal (rt_test_pg_long (s_f.pg, "SELECT count(*) FROM crm.customers"), 2);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup (test_story_across_channels, s_clean),
        cmocka_unit_test_setup (test_order_after_proof, s_clean),
        cmocka_unit_test_setup (test_merge_and_undo, s_clean),
        cmocka_unit_test_setup (test_never_two_shop_ids, s_clean),
        cmocka_unit_test_setup (test_undo_refused_when_a_later_merge_depends, s_clean),
        cmocka_unit_test_setup (test_merged_customer_resolves_to_survivor, s_clean),
        cmocka_unit_test_setup (test_concurrent_same_proven_phone, s_clean),
        cmocka_unit_test_setup (test_concurrent_same_identity, s_clean),
        cmocka_unit_test_setup (test_concurrent_same_shop_id, s_clean),
        cmocka_unit_test_setup (test_text_stored_verbatim, s_clean),
        cmocka_unit_test_setup (test_seen_batch, s_clean),
        cmocka_unit_test_setup (test_never_seen_is_new, s_clean),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
