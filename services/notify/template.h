/*
 * template: the texts notifyd sends, written once per name, locale and
 * channel variant, filled in per customer.
 *
 * A template is parsed once, when it is stored (retainctl template add
 * refuses a bad one with the line and column of the mistake), into a
 * compiled form that renders any number of times, from any number of
 * threads at once (a compiled template is never changed). The language is
 * small on purpose: nothing in it loops, calls out or reads anything but
 * the variables it is given, so a template written by a marketer cannot
 * hang a worker or leak another customer's data.
 *
 * The language. Text is copied as it stands; tags are {{ ... }} (spaces
 * inside are free):
 *
 *   {{name}}               the variable `name`. A variable the sender did
 *                          not give is an error naming it, never an empty
 *                          string: "Dear ," reaches nobody.
 *   {{#if var}}..{{else}}..{{/if}}
 *                          the first part when var is given and is not "",
 *                          "0" or "false"; else the second ({{else}} may be
 *                          left out). A missing var is false here: an
 *                          optional part is what #if is for. Nested at most
 *                          TEMPLATE_DEPTH_MAX deep.
 *   {{plural n one="# бал" few="# бали" many="# балів" other="# бала"}}
 *                          the form of the number in variable n that the
 *                          locale's plural rules (ICU's, CLDR's) choose:
 *                          zero, one, two, few, many, other. `other` is
 *                          required (every locale may answer it, 1.5 in
 *                          Ukrainian does); a category the locale answers
 *                          but the template lacks takes `other`. In a
 *                          form, # is the number as the locale writes it
 *                          ("1,5" in uk), \# a literal #, \" and \\ a quote
 *                          and a backslash. n is a decimal number: 5, -2,
 *                          1.5.
 *   {{money total_minor currency}}
 *                          an amount in minor units (an integer: kopiyky,
 *                          cents; 12345) in the currency named by the
 *                          second variable ("UAH") or given literally
 *                          ("UAH" in quotes), formatted per locale: 12345
 *                          UAH is "123,45 ₴" in uk, "UAH 123.45" in en. The
 *                          currency's own minor digits count (JPY has
 *                          none), and the decimal is exact (no float).
 *   {{date at style=medium time=short}}
 *                          the instant in variable at (unix milliseconds)
 *                          in the customer's time zone, per locale. style
 *                          (the date) and time are each none, short,
 *                          medium, long or full; by default style=medium
 *                          time=none. "9 січ. 2026 р." in uk.
 *   {{"text"}}             text as written, for a literal "{{".
 *
 * Variable names are letters, digits, '_' and '.', starting with a letter
 * or '_', at most TEMPLATE_NAME_MAX bytes. plural, money, date and else
 * begin tags, so they are no variables' names ({{date}} alone is an
 * error).
 *
 * HTML. The HTML part of an e-mail renders with ctx.html set: what comes
 * from variables (and the number, amount and date formatted from them) is
 * escaped (& < > " '), the template's own text is not (it is the markup).
 * Every other variant (the e-mail's text part and subject, messengers,
 * SMS) is plain text and is never escaped: "&amp;" in an SMS is a bug.
 *
 * Bounds: a template's source is at most TEMPLATE_SOURCE_MAX bytes, its
 * output at most ctx.max_out (TEMPLATE_OUT_MAX by default): past it the
 * render fails, naming the limit, instead of sending half a message.
 *
 * Locales. A template exists in some locales; the customer's is tried
 * first (as given, "uk-UA", then its language, "uk"), then each of a chain
 * (a setting, "uk,ru,en" by default) in order; within a locale the
 * channel's own variant comes before the 'default' one. The language
 * decides before the channel: a Ukrainian default beats a Russian SMS
 * variant for a Ukrainian customer (template_pick).
 */
#ifndef NOTIFY_TEMPLATE_H
#define NOTIFY_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "rt_buf.h"

#define TEMPLATE_SOURCE_MAX    (64 * 1024) /* bytes of one template's text */
#define TEMPLATE_OUT_MAX       (64 * 1024) /* bytes of one rendering, unless ctx says less */
#define TEMPLATE_DEPTH_MAX     8           /* {{#if}} inside {{#if}} */
#define TEMPLATE_NAME_MAX      64          /* bytes of a variable's name */
#define TEMPLATE_CHAIN_DEFAULT "uk,ru,en"

typedef struct template_t template_t;

/* Where and why a template does not parse. */
typedef struct {
    size_t offset;     /* bytes from the start of the source */
    int line;          /* 1-based */
    int column;        /* 1-based, in characters (code points) */
    char message[256]; /* what is wrong, e.g. "{{#if}} opened here is never closed" */
} template_error_t;

/* One variable given to a rendering. */
typedef struct {
    const char *name;  /* as the template names it */
    const char *value; /* UTF-8 text: numbers as decimals, instants as unix ms */
} template_var_t;

/* What one rendering reads. Strings are lent for the call. */
typedef struct {
    const char *locale;         /* BCP 47 ("uk", "en-US"): plural rules, numbers, money, dates */
    const char *zone;           /* IANA name for {{date}}; NULL or "": a date is an error */
    const template_var_t *vars; /* the variables; the first of a name counts */
    size_t nvars;               /* how many */
    bool html;                  /* escape what comes from variables (the HTML part) */
    size_t max_out;             /* the most bytes of output; 0: TEMPLATE_OUT_MAX */
} template_ctx_t;

/* Parses len bytes of src (UTF-8, no NUL). NULL with err filled for a
 * mistake (its position, and what is wrong) or when out of memory
 * (position 0, "out of memory"); err may be NULL. */
template_t *template_parse (const char *src, size_t len, template_error_t *err);

/* Frees a template; safe on NULL, sets *self_p to NULL. */
void template_destroy (template_t **self_p);

/* Formats err as "line L, column C: message" into out. */
void template_error_format (const template_error_t *err, char *out, size_t outlen);

/* Renders t with ctx, appending to out (which the caller owns and frees;
 * on failure it holds part of the output: discard it). 0, or -1 with the
 * reason in err: a missing variable ("missing variable \"points\""), a
 * value that is not what its tag needs (a number, an integer amount, an
 * instant, a currency ICU knows), no or an unknown zone for a date, ICU
 * failing, the output limit passed, out of memory. */
int template_render (const template_t *t, const template_ctx_t *ctx, rt_buf_t *out, char *err,
                     size_t errlen);

/* One stored variant of a template, as template_pick reads it. */
typedef struct {
    const char *locale;  /* BCP 47 as stored ("uk", "en-US") */
    const char *variant; /* a channel name as rt_channel spells it, or "default" */
} template_variant_t;

/* Which of n variants a customer gets (the order in the head of this
 * file): the index, or -1 when none of the customer's locale, its
 * language and the chain has the channel's variant or a default one.
 * locale may be NULL or "" (unknown: the chain alone), channel NULL or ""
 * (defaults only), chain NULL (TEMPLATE_CHAIN_DEFAULT). Locales compare
 * without case, '_' as '-'. */
int template_pick (const template_variant_t *variants, size_t n, const char *channel,
                   const char *locale, const char *chain);

/* The locale to render a picked variant with, into out: the customer's
 * own when it is the variant's or narrows it ("uk-UA" for a "uk"
 * template: its region may format money differently), else the
 * variant's (an English fallback renders English plurals). */
void template_render_locale (const char *picked, const char *customer, char *out, size_t outlen);

/* A customer as templates see them: the one list of variables that
 * notifyd's renderings and retainctl's preview both give. Strings lent;
 * "" for what is unknown. */
typedef struct {
    const char *id;       /* crm's id */
    const char *name;     /* the profile's name */
    const char *birthday; /* "YYYY-MM-DD" */
    const char *zone;     /* IANA: the birthday's midnight is in it */
} template_customer_t;

#define TEMPLATE_CUSTOMER_VARS 5  /* variables template_customer_vars adds at most */
#define TEMPLATE_CUSTOMER_BUF  24 /* bytes of buf it needs */

/* Appends c's variables to vars (room for TEMPLATE_CUSTOMER_VARS more
 * past *n; *n advanced): customer.id, customer.name and name, and, for a
 * known birthday, customer.birthday and birthday (its local midnight in
 * c->zone, unix ms, for {{date birthday}}), the number written in buf.
 * Appended after a request's own variables, which then win: the first of
 * a name counts. */
void template_customer_vars (const template_customer_t *c, template_var_t *vars, size_t *n,
                             char buf[TEMPLATE_CUSTOMER_BUF]);

/* 0 when locale is a BCP 47 tag of the plain shape retain stores
 * (language of 2-3 letters, then subtags of 1-8 letters or digits, '-'
 * between), -1 otherwise. */
int template_locale_check (const char *locale);

#endif
