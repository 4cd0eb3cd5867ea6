/*
 * keywords: the opt keywords ingest recognises in a customer's message.
 *
 * A message whose whole text is one keyword says something about consent:
 * STOP (and its kin) withdraws it, START gives it back. Carriers' rules
 * (Twilio's defaults, providers.md 2.5) count a keyword only when it is
 * the whole message, so "stop it" or "don't stop" are plain messages. The
 * table is one, in keywords.c: Twilio's English defaults, Ukrainian and
 * Russian; every channel a customer texts on reads it (SMS, WhatsApp,
 * Viber, Telegram, Messenger, Instagram) and no other: an e-mail's body
 * is not a keyword, nor is a call, a web chat's line to the shop or a
 * public comment under a post.
 *
 * ingest marks the InboundMessage (its opt field); notifyd, which keeps
 * consent, decides what it changes. A START keyword ("in") undoes a
 * keyword's opt-out, as it does at Twilio: YES answers many a question,
 * and is no consent to marketing by itself. Pure functions, thread-safe.
 */
#ifndef INGEST_KEYWORDS_H
#define INGEST_KEYWORDS_H

#include <stdbool.h>

#include "retain/v1/message.pb-c.h"

/* "out" when text, as a whole, is a STOP keyword, "in" when it is a START
 * keyword, "" otherwise (static strings). Compared without regard to case
 * (Latin and Cyrillic), to the composition of й, ї, ё and ў (NFC or NFD),
 * to white space around it (Unicode's, and zero-width marks) and to
 * trailing '.' and '!' ("Стоп!", "STOP."): a '?' makes it a question, and
 * anything else a sentence. NULL is "". */
const char *ingest_opt_keyword (const char *text);

/* Whether messages of channel are read for keywords. */
bool ingest_opt_channel (Retain__V1__Channel channel);

/* Sets msg->opt (a field of a message built by ingest_inbound_new) from its
 * text when its channel reads keywords and it is a plain text message: no
 * attachments, no origin (a comment), no event but "message". 0, or -1
 * when out of memory. */
int ingest_opt_apply (Retain__V1__InboundMessage *msg);

#endif
