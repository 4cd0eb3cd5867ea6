/*
 * segments: how many SMS messages a text goes out as, and in which
 * encoding, as the networks count them (3GPP TS 23.038 and 23.040).
 *
 * A text made only of the GSM 7-bit default alphabet goes as GSM-7: 160
 * septets in a single message, 153 in each part of a concatenated one
 * (the user data header takes the rest). The characters of the
 * alphabet's extension table (^ { } \ [ ~ ] | € and form feed) take two
 * septets each, an escape and the character. Any other character (any
 * Cyrillic letter, an emoji, a `) makes the whole text UCS-2: 70 UTF-16
 * code units single, 67 a part, and a character outside the BMP (most
 * emoji) is two units. A character is never split between two parts (an
 * escape and its character, or a surrogate pair, stay together), which
 * is why a part may hold one unit fewer than its size.
 *
 * The preview shows this (retainctl template preview), and the SMS
 * providers bill per segment, so a template that tips from 1 to 2
 * segments, or from GSM-7 to UCS-2 over one typographic quote, costs
 * double: the author should see it before it is sent.
 */
#ifndef NOTIFY_SEGMENTS_H
#define NOTIFY_SEGMENTS_H

#include <stddef.h>

#define SEGMENTS_GSM7_SINGLE 160 /* septets of a single GSM-7 message */
#define SEGMENTS_GSM7_PART   153 /* septets of one part of a concatenated one */
#define SEGMENTS_UCS2_SINGLE 70  /* UTF-16 code units of a single UCS-2 message */
#define SEGMENTS_UCS2_PART   67  /* of one part of a concatenated one */

typedef enum {
    SEGMENTS_GSM7, /* the GSM 7-bit default alphabet and its extension table */
    SEGMENTS_UCS2  /* UTF-16 */
} segments_encoding_t;

/* What a text costs as SMS. */
typedef struct {
    segments_encoding_t encoding; /* the one the whole text needs */
    size_t units;                 /* septets (GSM-7) or UTF-16 code units (UCS-2) of it all */
    size_t segments;              /* messages it goes as; 0 for an empty text */
    size_t per_segment;           /* units one message holds here: the single size when
                                     segments <= 1, else the part's */
} segments_t;

/* Counts len bytes of UTF-8 text into *out. 0, or -1 when the text is not
 * UTF-8 or holds a NUL byte (out is then zeroed). */
int segments_count (const char *text, size_t len, segments_t *out);

/* "GSM-7" or "UCS-2". */
const char *segments_encoding_name (segments_encoding_t encoding);

#endif
