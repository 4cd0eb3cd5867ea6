/*
 * test_tracker_carriers: what every carrier adapter of trackerd
 * (services/tracker/carrier.h) owes, without a network.
 *
 * The one list of carriers and their limits; each carrier's mapping table
 * complete against a list written here from providers.md section 1 (so a
 * code dropped from an adapter's table, or mapped to another tag, fails
 * here, whatever the adapter says); an unknown code kept raw; a delivered
 * parcel never told "in transit" again, only "returned"; the Kyiv wall
 * clock the Ukrainian carriers write read right on every day, the days the
 * clocks change included; ISO 8601 times; and every adapter's answer to
 * garbage, HTML, wrong JSON, huge values and every cut of a real answer:
 * a verdict with a reason, never a crash. Each carrier's own requests and
 * documented answers are in test_tracker_<carrier>.c.
 */
#include "tracker_test.h"

#include "rt_tz.h"

/* --- the list --- */

static void
test_carrier_list (void **state)
{
    (void)state;
    /* name, display, base-URL variable, production base, batch, token, and
     * the documented limits (providers.md: only DHL publishes them). */
    static const struct {
        const char *name, *display, *env, *base;
        size_t batch;
        bool token;
        int64_t spacing_ms;
        int quota, per_parcel;
    } want[] = {
        {"nova_poshta", "Nova Poshta", "RETAIN_TRACKER_NOVAPOSHTA_API",
         "https://api.novaposhta.ua/v2.0/json/", 100, false, 0, 0, 0},
        {"ukrposhta", "Ukrposhta", "RETAIN_TRACKER_UKRPOSHTA_API",
         "https://www.ukrposhta.ua/status-tracking/0.0.1", 100, false, 0, 0, 0},
        {"meest", "Meest", "RETAIN_TRACKER_MEEST_API", "https://api.meest.com/v3.0/openAPI", 1,
         false, 0, 0, 0},
        {"dhl", "DHL", "RETAIN_TRACKER_DHL_API", "https://api-eu.dhl.com", 1, false, 1000, 250, 10},
        {"ups", "UPS", "RETAIN_TRACKER_UPS_API", "https://onlinetools.ups.com", 1, true, 0, 0, 0},
    };
    size_t i = 0;
    for (; carrier_all[i]; i++) {
        const carrier_t *c = carrier_all[i];
        assert_true (i < sizeof want / sizeof *want);
        assert_string_equal (c->name, want[i].name);
        assert_string_equal (c->display, want[i].display);
        assert_string_equal (c->api_env, want[i].env);
        assert_string_equal (c->api_default, want[i].base);
        assert_int_equal (c->batch_max, want[i].batch);
        assert_int_equal (c->needs_token, want[i].token);
        assert_int_equal (c->min_interval_ms, want[i].spacing_ms);
        assert_int_equal (c->daily_quota, want[i].quota);
        assert_int_equal (c->per_parcel_day, want[i].per_parcel);
        assert_ptr_equal (carrier_find (c->name), c);
        assert_non_null (c->number_check);
        assert_non_null (c->build);
        assert_non_null (c->parse);
        assert_true (c->codes != NULL && c->n_codes > 0);
        /* Only a carrier that needs a token has the token's halves. */
        assert_int_equal (c->build_token != NULL, want[i].token);
        assert_int_equal (c->parse_token != NULL, want[i].token);
    }
    assert_int_equal (i, sizeof want / sizeof *want);
    assert_null (carrier_find ("novaposhta"));
    assert_null (carrier_find (""));
    assert_null (carrier_find (NULL));
}

/* --- the tables --- */

/* A documented code and what a customer must hear of it. */
typedef struct {
    const char *code;   /* as the carrier sends it */
    tracking_tag_t tag; /* the tag providers.md's meaning comes to */
    const char *sub;    /* the sub-status, when the meaning fixes one; NULL: any of the tag */
    bool returning;     /* the parcel goes back to the sender */
} s_doc_t;

/* providers.md 1.1's StatusCode table (and 1.6's suggested mapping). */
static const s_doc_t s_nova_poshta_doc[] = {
    {"1", TAG_INFO_RECEIVED, NULL, false},
    {"2", TAG_EXCEPTION, NULL, false}, /* deleted: cancelled */
    {"3", TAG_PENDING, NULL, false},   /* not found */
    {"4", TAG_IN_TRANSIT, NULL, false},
    {"41", TAG_IN_TRANSIT, NULL, false},
    {"5", TAG_IN_TRANSIT, NULL, false},
    {"6", TAG_IN_TRANSIT, NULL, false},
    {"7", TAG_AVAILABLE_FOR_PICKUP, NULL, false},
    {"8", TAG_AVAILABLE_FOR_PICKUP, NULL, false},
    {"9", TAG_DELIVERED, NULL, false},
    {"10", TAG_DELIVERED, "Delivered_004", false}, /* cash on delivery */
    {"11", TAG_DELIVERED, "Delivered_004", false},
    {"12", TAG_INFO_RECEIVED, NULL, false},
    {"101", TAG_OUT_FOR_DELIVERY, NULL, false},
    {"102", TAG_EXCEPTION, "Exception_003", true}, /* refused, returning */
    {"103", TAG_EXCEPTION, "Exception_003", true},
    {"104", TAG_IN_TRANSIT, NULL, false},
    {"105", TAG_EXCEPTION, NULL, true}, /* storage stopped: back to the sender */
    {"106", TAG_DELIVERED, NULL, false},
    {"111", TAG_ATTEMPT_FAIL, NULL, false},
    {"112", TAG_IN_TRANSIT, NULL, false},
    {"14", TAG_AVAILABLE_FOR_PICKUP, NULL, false},
    {"107", TAG_AVAILABLE_FOR_PICKUP, NULL, false},
    {"108", TAG_EXCEPTION, "Exception_003", true},
};

/* providers.md 1.2's event codes, and the delivered event with the return
 * reason (41000, eventReason_id 10: "41000/10"). */
static const s_doc_t s_ukrposhta_doc[] = {
    {"10100", TAG_IN_TRANSIT, NULL, false}, /* accepted from the sender */
    {"10400", TAG_EXCEPTION, NULL, false},  /* cancelled */
    {"10600", TAG_EXCEPTION, NULL, false},
    {"10602", TAG_EXCEPTION, NULL, false},
    {"20700", TAG_IN_TRANSIT, NULL, false},
    {"20800", TAG_IN_TRANSIT, NULL, false},
    {"20900", TAG_IN_TRANSIT, NULL, false},
    {"21500", TAG_IN_TRANSIT, NULL, false},
    {"21700", TAG_AVAILABLE_FOR_PICKUP, NULL, false},
    {"31100", TAG_IN_TRANSIT, NULL, false},
    {"31200", TAG_EXCEPTION, "Exception_010", true}, /* returning to the sender */
    {"31300", TAG_IN_TRANSIT, NULL, false},          /* redirected */
    {"31400", TAG_IN_TRANSIT, NULL, false},
    {"41000", TAG_DELIVERED, NULL, false},
    {"41000/10", TAG_EXCEPTION, "Exception_011", true}, /* returned to the sender */
    {"48000", TAG_DELIVERED, NULL, false},
    {"41010", TAG_EXCEPTION, "Exception_011", true},
    {"41020", TAG_EXCEPTION, "Exception_011", true},
};

/* providers.md 1.3: 2 created, 1622 delivered; 1825, 3 and 5700 "final"
 * for one integrator with no confirmed meaning, so never "delivered". */
static const s_doc_t s_meest_doc[] = {
    {"2", TAG_INFO_RECEIVED, NULL, false}, {"1622", TAG_DELIVERED, NULL, false},
    {"1825", TAG_EXCEPTION, NULL, false},  {"3", TAG_EXCEPTION, NULL, false},
    {"5700", TAG_EXCEPTION, NULL, false},
};

/* providers.md 1.4's statusCode enum. */
static const s_doc_t s_dhl_doc[] = {
    {"pre-transit", TAG_INFO_RECEIVED, NULL, false}, {"transit", TAG_IN_TRANSIT, NULL, false},
    {"delivered", TAG_DELIVERED, NULL, false},       {"failure", TAG_EXCEPTION, NULL, false},
    {"unknown", TAG_PENDING, NULL, false},
};

/* providers.md 1.5's status.type letters. */
static const s_doc_t s_ups_doc[] = {
    {"D", TAG_DELIVERED, NULL, false},
    {"I", TAG_IN_TRANSIT, NULL, false},
    {"M", TAG_INFO_RECEIVED, NULL, false},
    {"MV", TAG_EXCEPTION, NULL, false}, /* billing information voided */
    {"P", TAG_IN_TRANSIT, NULL, false}, /* picked up */
    {"X", TAG_EXCEPTION, NULL, false},
    {"RS", TAG_EXCEPTION, "Exception_011", true}, /* returned to shipper */
    {"DO", TAG_IN_TRANSIT, NULL, false},          /* freight: at the origin CFS */
    {"DD", TAG_IN_TRANSIT, NULL, false},          /* freight: at the destination CFS */
    {"W", TAG_IN_TRANSIT, NULL, false},
    {"NA", TAG_PENDING, NULL, false},
    {"O", TAG_OUT_FOR_DELIVERY, NULL, false},
};

static void
s_table_complete (const carrier_t *c, const s_doc_t *doc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const carrier_code_t *e = carrier_code_find (c, doc[i].code);
        if (!e)
            fail_msg ("%s: documented code \"%s\" is not in the table", c->name, doc[i].code);
        if (e->tag != doc[i].tag || e->returning != doc[i].returning ||
            (doc[i].sub && strcmp (e->sub_status, doc[i].sub) != 0))
            fail_msg ("%s \"%s\": got %s/%s returning=%d, want %s/%s returning=%d", c->name,
                      doc[i].code, status_tag_name (e->tag), e->sub_status, e->returning,
                      status_tag_name (doc[i].tag), doc[i].sub ? doc[i].sub : "*",
                      doc[i].returning);
        /* A return reaches the customer as one (the move rule's way out
         * of a final tag) only with a return sub-status. */
        if (e->tag == TAG_EXCEPTION && status_sub_is_return (e->sub_status) && !e->returning)
            fail_msg ("%s \"%s\": a return sub-status not flagged returning", c->name, e->code);
    }
    /* The table itself: one entry per code, each sub-status of its own
     * tag ("<Tag>_NNN"), a meaning for the logs. */
    for (size_t i = 0; i < c->n_codes; i++) {
        const carrier_code_t *e = &c->codes[i];
        const char *tag = status_tag_name (e->tag);
        size_t tl = strlen (tag);
        assert_true (tl > 0);
        if (strncmp (e->sub_status, tag, tl) != 0 || e->sub_status[tl] != '_' ||
            strlen (e->sub_status) != tl + 4 || strlen (e->sub_status) >= CARRIER_SUB_MAX)
            fail_msg ("%s \"%s\": sub-status \"%s\" is not of tag %s", c->name, e->code,
                      e->sub_status, tag);
        assert_true (e->meaning && e->meaning[0]);
        for (size_t k = i + 1; k < c->n_codes; k++)
            if (strcmp (e->code, c->codes[k].code) == 0)
                fail_msg ("%s: code \"%s\" twice in the table", c->name, e->code);
    }
}

/* The carrier named `name`, failing when there is none. */
static const carrier_t *
s_carrier (const char *name)
{
    const carrier_t *c = carrier_find (name);
    if (!c)
        fail_msg ("no carrier \"%s\"", name);
    return c;
}

#define S_COMPLETE(name, doc) s_table_complete (s_carrier (name), doc, sizeof doc / sizeof *doc)

static void
test_tables_complete (void **state)
{
    (void)state;
    S_COMPLETE ("nova_poshta", s_nova_poshta_doc);
    S_COMPLETE ("ukrposhta", s_ukrposhta_doc);
    S_COMPLETE ("meest", s_meest_doc);
    S_COMPLETE ("dhl", s_dhl_doc);
    S_COMPLETE ("ups", s_ups_doc);
}

/* A code no table has is kept as the carrier said it, and counted as
 * unmapped; the tag says nothing. */
static void
test_unknown_code_kept_raw (void **state)
{
    (void)state;
    for (size_t i = 0; carrier_all[i]; i++) {
        carrier_result_t r = {.found = true, .raw_code = "ZZ-999", .tag = TAG_IN_TRANSIT};
        snprintf (r.sub_status, sizeof r.sub_status, "stale");
        assert_null (carrier_code_find (carrier_all[i], "ZZ-999"));
        assert_null (carrier_code_find (carrier_all[i], ""));
        assert_null (carrier_code_find (carrier_all[i], NULL));
        carrier_result_map (carrier_all[i], &r);
        assert_false (r.mapped);
        assert_string_equal (r.raw_code, "ZZ-999");
        assert_string_equal (r.sub_status, "");
    }
}

/* A parcel told "delivered" is never told "in transit" by a stale scan:
 * only a return moves it on. */
static void
test_final_moves_only_to_a_return (void **state)
{
    (void)state;
    static const struct {
        const char *carrier, *delivered, *moving, *returned;
    } cases[] = {
        {"nova_poshta", "9", "5", "105"}, {"ukrposhta", "41000", "20800", "41000/10"},
        {"meest", "1622", "2", NULL},     {"dhl", "delivered", "transit", NULL},
        {"ups", "D", "I", "RS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const carrier_t *c = s_carrier (cases[i].carrier);
        const carrier_code_t *d = carrier_code_find (c, cases[i].delivered);
        const carrier_code_t *m = carrier_code_find (c, cases[i].moving);
        assert_non_null (d);
        assert_non_null (m);
        assert_true (status_tag_final (d->tag));
        if (status_may_move (d->tag, d->sub_status, m->tag, m->sub_status))
            fail_msg ("%s: %s may move back to %s", c->name, d->code, m->code);
        /* Forward is always allowed. */
        assert_true (status_may_move (m->tag, m->sub_status, d->tag, d->sub_status));
        if (cases[i].returned) {
            const carrier_code_t *r = carrier_code_find (c, cases[i].returned);
            assert_non_null (r);
            assert_true (r->returning);
            if (!status_may_move (d->tag, d->sub_status, r->tag, r->sub_status))
                fail_msg ("%s: %s may not move to its return %s", c->name, d->code, r->code);
        }
    }
    /* A refusal is an exception, not a return: it does not reopen a
     * delivered parcel. */
    const carrier_code_t *refused = carrier_code_find (s_carrier ("nova_poshta"), "103");
    assert_false (
        status_may_move (TAG_DELIVERED, "Delivered_001", refused->tag, refused->sub_status));
}

/* --- time --- */

/* The Kyiv wall clock as the Ukrainian carriers write it. Kyiv is UTC+2
 * in winter (EET) and UTC+3 in summer (EEST); the clocks go forward at
 * 03:00 on the last Sunday of March and back at 04:00 on the last Sunday
 * of October. */
static void
test_kyiv_wall_clock (void **state)
{
    (void)state;
    /* Nova Poshta's four spellings (TrackingUpdateDate, ScheduledDeliveryDate,
     * RecipientDateTime, DateScan), summer: UTC+3. */
    tt_expect_ms (carrier_kyiv_ms ("2026-08-05 19:42:05"), tt_utc (2026, 8, 5, 16, 42, 5),
                  "TrackingUpdateDate, summer");
    tt_expect_ms (carrier_kyiv_ms ("05-08-2026 16:36:53"), tt_utc (2026, 8, 5, 13, 36, 53),
                  "ScheduledDeliveryDate, summer");
    tt_expect_ms (carrier_kyiv_ms ("03.08.2026 00:22:47"), tt_utc (2026, 8, 2, 21, 22, 47),
                  "RecipientDateTime, summer, the day before in UTC");
    tt_expect_ms (carrier_kyiv_ms ("19:42 05.08.2026"), tt_utc (2026, 8, 5, 16, 42, 0),
                  "DateScan, summer");
    /* Winter: UTC+2. */
    tt_expect_ms (carrier_kyiv_ms ("2026-01-15 12:45:45"), tt_utc (2026, 1, 15, 10, 45, 45),
                  "winter");
    tt_expect_ms (carrier_kyiv_ms ("2026-12-31 23:59:59"), tt_utc (2026, 12, 31, 21, 59, 59),
                  "the year's last second");
    tt_expect_ms (carrier_kyiv_ms ("2027-01-01 01:00:00"), tt_utc (2026, 12, 31, 23, 0, 0),
                  "New Year in Kyiv, the old year in UTC");
    /* Ukrposhta's and Meest's: 'T', seconds optional, a date alone. */
    tt_expect_ms (carrier_kyiv_ms ("2026-07-02T10:05:00"), tt_utc (2026, 7, 2, 7, 5, 0), "'T'");
    tt_expect_ms (carrier_kyiv_ms ("2026-07-02 10:05"), tt_utc (2026, 7, 2, 7, 5, 0), "no seconds");
    tt_expect_ms (carrier_kyiv_ms ("2026-07-08"), tt_utc (2026, 7, 7, 21, 0, 0), "a date alone");
    tt_expect_ms (carrier_kyiv_ms ("02.01.2025"), tt_utc (2025, 1, 1, 22, 0, 0),
                  "a dotted date alone");
    tt_expect_ms (carrier_kyiv_ms ("19-11-2016"), tt_utc (2016, 11, 18, 22, 0, 0),
                  "a dashed date alone");
    /* The days the clocks change. 29 March 2026: 03:00 EET is 04:00
     * EEST, so 02:59 is still winter, 03:30 does not exist (rt_tz: the
     * instant of the change), 04:00 is summer. */
    tt_expect_ms (carrier_kyiv_ms ("2026-03-29 02:59:59"), tt_utc (2026, 3, 29, 0, 59, 59),
                  "before the spring change");
    tt_expect_ms (carrier_kyiv_ms ("2026-03-29 03:30:00"), tt_utc (2026, 3, 29, 1, 0, 0),
                  "a skipped time");
    tt_expect_ms (carrier_kyiv_ms ("2026-03-29 04:00:00"), tt_utc (2026, 3, 29, 1, 0, 0),
                  "after the spring change");
    tt_expect_ms (carrier_kyiv_ms ("2026-03-28 12:00:00"), tt_utc (2026, 3, 28, 10, 0, 0),
                  "the day before, winter");
    tt_expect_ms (carrier_kyiv_ms ("2026-03-30 12:00:00"), tt_utc (2026, 3, 30, 9, 0, 0),
                  "the day after, summer");
    /* 25 October 2026: 04:00 EEST is 03:00 EET; 03:30 happens twice, and
     * names its first time (EEST). */
    tt_expect_ms (carrier_kyiv_ms ("2026-10-25 03:30:00"), tt_utc (2026, 10, 25, 0, 30, 0),
                  "a repeated time");
    tt_expect_ms (carrier_kyiv_ms ("2026-10-25 04:30:00"), tt_utc (2026, 10, 25, 2, 30, 0),
                  "after the autumn change");
    tt_expect_ms (carrier_kyiv_ms ("2026-10-24 12:00:00"), tt_utc (2026, 10, 24, 9, 0, 0),
                  "the day before, summer");
    tt_expect_ms (carrier_kyiv_ms ("2026-10-26 12:00:00"), tt_utc (2026, 10, 26, 10, 0, 0),
                  "the day after, winter");
    /* Nothing else is a date: 0, never a guess. */
    static const char *const bad[] = {
        "",
        "   ",
        "yesterday",
        "0001-01-01 00:00:00",
        "2026-02-30",
        "2026-13-01",
        "2026-07-01 24:00:00",
        "2026-07-01 12:60",
        "2026-07-01x",
        "1.7.2026",
        "2026/07/01",
        "14:30",
        "01.07-2026",
        "99999-01-01",
        "2026-07-01 14:30:00 +03:00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (carrier_kyiv_ms (bad[i]) != 0)
            fail_msg ("\"%s\" read as a date", bad[i]);
    assert_int_equal (carrier_kyiv_ms (NULL), 0);
}

/* The month table agrees with rt_tz (ICU) everywhere: every 7 hours and
 * 13 minutes of 2000-2099, and every 10 minutes of the weekends the
 * clocks change in 2020-2030. */
static void
test_kyiv_table_agrees_with_icu (void **state)
{
    (void)state;
    char err[128];
    rt_tz_t *tz = rt_tz_new ("Europe/Kyiv", err, sizeof err);
    if (!tz)
        fail_msg ("%s", err);
    int64_t checked = 0;
    int64_t step = (7 * 60 + 13) * 60;
    for (int64_t t = rt_civil_days (2000, 1, 1) * 86400; t < rt_civil_days (2100, 1, 1) * 86400;
         t += step) {
        int64_t days = t / 86400, y;
        int mo, d, h = (int)(t % 86400 / 3600), mi = (int)(t % 3600 / 60);
        rt_civil_date (days, &y, &mo, &d);
        int64_t got, want;
        assert_int_equal (carrier_kyiv_to_unix ((int)y, mo, d, h, mi, 0, &got), 0);
        assert_int_equal (rt_tz_to_unix (tz, (int)y, mo, d, h, mi, 0, &want), 0);
        if (got != want)
            fail_msg ("%04d-%02d-%02d %02d:%02d: table %lld, ICU %lld", (int)y, mo, d, h, mi,
                      (long long)got, (long long)want);
        checked++;
    }
    for (int y = 2020; y <= 2030; y++) {
        for (int mo = 3; mo <= 10; mo += 7) {
            for (int d = 24; d <= 31; d++) {
                for (int m = 0; m < 24 * 60; m += 10) {
                    int64_t got, want;
                    assert_int_equal (carrier_kyiv_to_unix (y, mo, d, m / 60, m % 60, 0, &got), 0);
                    assert_int_equal (rt_tz_to_unix (tz, y, mo, d, m / 60, m % 60, 0, &want), 0);
                    if (got != want)
                        fail_msg ("%04d-%02d-%02d %02d:%02d: table %lld, ICU %lld", y, mo, d,
                                  m / 60, m % 60, (long long)got, (long long)want);
                    checked++;
                }
            }
        }
    }
    assert_true (checked > 100000);
    /* Outside the table's years, and out of range. */
    int64_t got;
    assert_int_equal (carrier_kyiv_to_unix (1999, 7, 1, 12, 0, 0, &got), 0);
    tt_expect_ms (got, tt_utc (1999, 7, 1, 9, 0, 0), "1999, summer");
    assert_int_equal (carrier_kyiv_to_unix (2100, 1, 1, 12, 0, 0, &got), 0);
    tt_expect_ms (got, tt_utc (2100, 1, 1, 10, 0, 0), "2100, winter");
    assert_int_equal (carrier_kyiv_to_unix (2026, 2, 29, 12, 0, 0, &got), -1);
    assert_int_equal (carrier_kyiv_to_unix (2026, 7, 1, 24, 0, 0, &got), -1);
    rt_tz_destroy (&tz);
}

static void
test_iso_times (void **state)
{
    (void)state;
    tt_expect_ms (carrier_iso_ms ("2026-07-02T14:35:00+02:00"), tt_utc (2026, 7, 2, 12, 35, 0),
                  "+02:00");
    tt_expect_ms (carrier_iso_ms ("2026-07-06T18:00:00+0300"), tt_utc (2026, 7, 6, 15, 0, 0),
                  "+0300");
    tt_expect_ms (carrier_iso_ms ("2026-07-01T10:00:00Z"), tt_utc (2026, 7, 1, 10, 0, 0), "Z");
    tt_expect_ms (carrier_iso_ms ("2026-07-01T03:00:00-05:00"), tt_utc (2026, 7, 1, 8, 0, 0),
                  "-05:00");
    tt_expect_ms (carrier_iso_ms ("2026-07-03T11:45:10.500+03:00"),
                  tt_utc (2026, 7, 3, 8, 45, 10) + 500, "milliseconds");
    tt_expect_ms (carrier_iso_ms ("2026-07-03T11:45:00"), tt_utc (2026, 7, 3, 11, 45, 0),
                  "no zone: UTC");
    tt_expect_ms (carrier_iso_ms ("2026-07-03"), tt_utc (2026, 7, 3, 0, 0, 0), "a date alone");
    tt_expect_ms (carrier_iso_ms ("2026-07-01T00:30:00+03:00"), tt_utc (2026, 6, 30, 21, 30, 0),
                  "the day before in UTC");
    static const char *const bad[] = {
        "",
        "2026-07-03T",
        "2026-07-03T11",
        "2026-07-03T11:45:00+",
        "2026-07-03T11:45:00+25:00",
        "2026-02-30T00:00:00Z",
        "tomorrow",
        "2026-07-03T11:45:00Zjunk",
        "2026-07-03T11:45:00.Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (carrier_iso_ms (bad[i]) != 0)
            fail_msg ("\"%s\" read as a time", bad[i]);
    assert_int_equal (carrier_iso_ms (NULL), 0);
}

/* --- what no adapter may do with any answer --- */

/* One query fit for each carrier, n of them for a batch carrier. */
static const carrier_query_t s_any_queries[] = {
    {.tracking_number = "20450059800767", .phone = "380958860454"},
    {.tracking_number = "59000123456789"},
};

static size_t
s_any_n (const carrier_t *c)
{
    return c->batch_max > 1 ? 2 : 1;
}

static void
test_garbage_is_a_verdict (void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>",
        "null",
        "true",
        "42",
        "\"a string\"",
        "[]",
        "{}",
        "[1, \"x\", null, {}, []]",
        "{\"success\": true, \"data\": [1, 2]}",
        "{\"success\": true, \"data\": [{\"Number\": 20450059800767, \"StatusCode\": 9}]}",
        "{\"success\": false, \"errorCodes\": {\"a\": 1}, \"errors\": \"no\"}",
        "{\"success\": false, \"errorCodes\": [null, 3.5, []], \"errors\": [7]}",
        "[{\"barcode\": null, \"event\": {}}, {\"barcode\": \"RB123456785UA\", \"event\": []}]",
        "{\"status\": \"OK\", \"result\": [{\"eventCode\": {}, \"eventDateTime\": 5}]}",
        "{\"status\": 7, \"result\": \"x\"}",
        "{\"shipments\": [null, 1, {\"status\": []}, {\"status\": {\"statusCode\": 5}}]}",
        "{\"shipments\": [{\"status\": {\"statusCode\": \"transit\"}, \"events\": [1, null]}]}",
        "{\"trackResponse\": {\"shipment\": [{\"package\": [{\"currentStatus\": 1}]}]}}",
        "{\"trackResponse\": {\"shipment\": [{\"package\": [{\"currentStatus\": {\"type\": \"I\"},"
        " \"activity\": [null, {\"date\": 1}], \"deliveryDate\": [{\"type\": \"SDD\"}]}]}]}}",
        "{\"a\": 1e999}",
        "{\"a\": 123456789012345678901234567890}",
        "{\"a\": \"\\u0000\"}",
        "\xff\xfe\xfd",
        "{\"a\":",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    };
    static const int statuses[] = {0, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 503};
    for (size_t ci = 0; carrier_all[ci]; ci++) {
        const carrier_t *c = carrier_all[ci];
        size_t n = s_any_n (c);
        for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++) {
            for (size_t s = 0; s < sizeof statuses / sizeof *statuses; s++) {
                carrier_answer_t a = tt_parse (c, s_any_queries, n, statuses[s], 12000, bodies[b],
                                               strlen (bodies[b]));
                if (statuses[s] == 0 || statuses[s] >= 500)
                    assert_int_equal (a.verdict, CARRIER_RETRY);
                if (statuses[s] == 429) {
                    assert_int_equal (a.verdict, CARRIER_WAIT);
                    assert_int_equal (a.wait_ms, 12000);
                }
                carrier_answer_free (&a);
                carrier_answer_free (&a);
            }
        }
        /* Garbage where JSON was due is a retry that says what came. */
        carrier_answer_t a = tt_parse (c, s_any_queries, n, 200, -1, bodies[1], strlen (bodies[1]));
        tt_expect (&a, CARRIER_RETRY, "", "not JSON", c->name);
        assert_non_null (strstr (a.reason, "502 Bad Gateway"));
        carrier_answer_free (&a);
        /* A 429 without Retry-After: the poller's default (0). */
        a = tt_parse (c, s_any_queries, n, 429, -1, "", 0);
        assert_int_equal (a.verdict, CARRIER_WAIT);
        assert_int_equal (a.wait_ms, 0);
        carrier_answer_free (&a);
        /* A carrier of one number a call, handed two: a bad request (the
         * poller then asks each alone), never one answer given twice. */
        if (c->batch_max == 1) {
            a = tt_parse (c, s_any_queries, 2, 200, -1, "{}", 2);
            tt_expect (&a, CARRIER_BAD_REQUEST, "", "one number", c->name);
            carrier_answer_free (&a);
        }
        /* NULL body with a length of 0. */
        a = tt_parse (c, s_any_queries, n, 200, -1, NULL, 0);
        assert_int_equal (a.verdict, CARRIER_RETRY);
        carrier_answer_free (&a);
    }
}

/* A huge answer: a status text of 1 MB, a thousand events, a thousand
 * unknown items; read whole or refused, never a crash, nothing lost. */
static void
test_huge_values (void **state)
{
    (void)state;
    rt_buf_t b = {0};
    rt_buf_puts (&b, "{\"success\": true, \"data\": [");
    for (int i = 0; i < 1000; i++)
        rt_buf_printf (&b, "{\"Number\": \"5900000000%04d\", \"StatusCode\": \"5\"},", i);
    rt_buf_puts (&b, "{\"Number\": \"20450059800767\", \"StatusCode\": \"7\", \"Status\": \"");
    for (int i = 0; i < 1 << 20; i++)
        rt_buf_put (&b, "x", 1);
    rt_buf_puts (&b, "\", \"TrackingUpdateDate\": \"9999999-99-99\"}]}");
    assert_false (b.failed);
    const carrier_t *np = s_carrier ("nova_poshta");
    carrier_answer_t a = tt_parse (np, s_any_queries, 2, 200, -1, b.data, b.len);
    assert_int_equal (a.verdict, CARRIER_OK);
    assert_true (a.results[0].found);
    assert_int_equal (strlen (a.results[0].raw_text), 1 << 20);
    assert_int_equal (a.results[0].status_at_ms, 0);
    assert_false (a.results[1].found);
    carrier_answer_free (&a);

    rt_buf_reset (&b);
    rt_buf_puts (&b, "{\"status\": \"OK\", \"result\": [");
    for (int i = 0; i < 1000; i++)
        rt_buf_printf (&b, "%s{\"eventDateTime\": \"2026-07-01 %02d:%02d:00\", \"eventCode\": %d}",
                       i ? "," : "", i / 60 % 24, i % 60, 1000 - i);
    rt_buf_puts (&b, "]}");
    const carrier_t *meest = s_carrier ("meest");
    carrier_query_t q = {.tracking_number = "722-12345678"};
    a = tt_parse (meest, &q, 1, 200, -1, b.data, b.len);
    assert_int_equal (a.verdict, CARRIER_OK);
    assert_int_equal (a.results[0].n_events, 1000);
    for (size_t i = 1; i < a.results[0].n_events; i++)
        assert_true (a.results[0].events[i - 1].at_ms <= a.results[0].events[i].at_ms);
    carrier_answer_free (&a);
    rt_buf_free (&b);
}

/* Every cut of every success fixture: OK or RETRY. */
static void
test_truncation (void **state)
{
    (void)state;
    static const carrier_query_t np[] = {
        {.tracking_number = "20450059800767"},
        {.tracking_number = "59000123456789"},
        {.tracking_number = "59000333333333"},
        {.tracking_number = "20450000001234"},
    };
    static const carrier_query_t up[] = {
        {.tracking_number = "RB123456785UA"},
        {.tracking_number = "0500123456789"},
        {.tracking_number = "CP000000005UA"},
    };
    static const carrier_query_t one[] = {
        {.tracking_number = "1Z999AA10123456784", .service = "parcel-de", .trans_id = "t-1"}};
    static const struct {
        const char *carrier, *fixture;
        const carrier_query_t *q;
        size_t n;
    } cases[] = {
        {"nova_poshta", "statuses_batch.json", np, 4},
        {"ukrposhta", "statuses_last.json", up, 3},
        {"meest", "tracking_delivered.json", one, 1},
        {"dhl", "shipments_two_services.json", one, 1},
        {"dhl", "shipment_delivered.json", one, 1},
        {"ups", "track_in_transit.json", one, 1},
        {"ups", "track_delivered.json", one, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = 0;
        char *body = tt_fixture (cases[i].carrier, cases[i].fixture, &len);
        tt_every_prefix (s_carrier (cases[i].carrier), cases[i].q, cases[i].n, body, len);
        free (body);
    }
    /* And the token's answer. */
    size_t len = 0;
    char *body = tt_fixture ("ups", "token.json", &len);
    const carrier_t *ups = s_carrier ("ups");
    for (size_t cut = 0; cut < len; cut++) {
        carrier_answer_t a;
        char *token = (char *)"stale";
        int64_t expires = -1;
        memset (&a, 0x5a, sizeof a);
        int rc = ups->parse_token (200, -1, body, cut, &token, &expires, &a);
        /* Only a cut in the trailing newline leaves the whole token. */
        bool whole = strspn (body + cut, " \n") == len - cut;
        assert_int_equal (rc, whole ? 0 : -1);
        assert_int_equal (a.verdict, whole ? CARRIER_OK : CARRIER_RETRY);
        assert_int_equal (a.n_results, 0);
        if (whole) {
            assert_non_null (token);
            free (token);
        } else {
            assert_null (token);
            assert_true (a.reason[0] != '\0');
        }
    }
    free (body);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_carrier_list),
        cmocka_unit_test (test_tables_complete),
        cmocka_unit_test (test_unknown_code_kept_raw),
        cmocka_unit_test (test_final_moves_only_to_a_return),
        cmocka_unit_test (test_kyiv_wall_clock),
        cmocka_unit_test (test_kyiv_table_agrees_with_icu),
        cmocka_unit_test (test_iso_times),
        cmocka_unit_test (test_garbage_is_a_verdict),
        cmocka_unit_test (test_huge_values),
        cmocka_unit_test (test_truncation),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
