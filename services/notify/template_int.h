/*
 * template_int: the compiled form of a template, which the parser
 * (template.c) builds and the renderer (template_render.c) walks. Not
 * part of the contract: template.h is.
 *
 * A flat array of nodes, with {{#if}}, {{else}} and {{/if}} as nodes that
 * jump: an #if jumps to its else (or its end) when false, an else reached
 * from the first part jumps to the end.
 */
#ifndef NOTIFY_TEMPLATE_INT_H
#define NOTIFY_TEMPLATE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <unicode/udat.h>

#include "template.h"

typedef enum {
    TEMPLATE_N_TEXT,   /* literal text */
    TEMPLATE_N_VAR,    /* {{name}} */
    TEMPLATE_N_IF,     /* {{#if name}} */
    TEMPLATE_N_ELSE,   /* {{else}} */
    TEMPLATE_N_END,    /* {{/if}} */
    TEMPLATE_N_PLURAL, /* {{plural name one="..." ...}} */
    TEMPLATE_N_MONEY,  /* {{money name currency}} */
    TEMPLATE_N_DATE    /* {{date name style=... time=...}} */
} template_kind_t;

/* The plural categories, in CLDR's order. */
enum {
    TEMPLATE_FORM_ZERO,
    TEMPLATE_FORM_ONE,
    TEMPLATE_FORM_TWO,
    TEMPLATE_FORM_FEW,
    TEMPLATE_FORM_MANY,
    TEMPLATE_FORM_OTHER,
    TEMPLATE_NFORMS
};
/* Their names, as ICU's plural rules and {{plural}} write them. */
extern const char *const template_form_names[TEMPLATE_NFORMS];

typedef struct {
    template_kind_t kind; /* what the node does */
    char *text;           /* TEMPLATE_N_TEXT: the literal; the others but ELSE/END: the variable */
    size_t len;           /* bytes of text */
    char *arg;            /* TEMPLATE_N_MONEY: the currency's variable, or the code (arg_literal) */
    bool arg_literal;     /* TEMPLATE_N_MONEY: arg is the code itself */
    char *
        forms[TEMPLATE_NFORMS]; /* TEMPLATE_N_PLURAL: each category's raw form, NULL where absent */
    UDateFormatStyle date;      /* TEMPLATE_N_DATE: the date's style */
    UDateFormatStyle time;      /* TEMPLATE_N_DATE: the time's style */
    size_t jump;                /* TEMPLATE_N_IF: its ELSE or END; TEMPLATE_N_ELSE: its END */
} template_node_t;

struct template_t {
    template_node_t *nodes; /* in source order */
    size_t count;           /* nodes in use */
    size_t cap;             /* nodes allocated */
};

#endif
