/*
 * unsubscribe: the one-click unsubscribe link (RFC 8058), as ingestd
 * serves it at /u/{token}.
 *
 * notifyd puts the link in what it sends (the List-Unsubscribe header of a
 * mail, with List-Unsubscribe-Post: List-Unsubscribe=One-Click, or a line
 * under a message): https://<ingestd's public URL>/u/<token>, the token
 * made with rt_signed_unsubscribe_make (common/crypto/rt_signed.h) for a
 * customer, a channel and a category. What a request there does:
 *
 *   GET (and HEAD): a small page that says what the button does, with a
 *     form that POSTs List-Unsubscribe=One-Click back to the same URL.
 *     Never an unsubscribe: mail scanners and link previews fetch links.
 *   POST with List-Unsubscribe=One-Click (form-urlencoded, as RFC 8058
 *     has mail clients send it, or multipart/form-data): one
 *     ConsentChanged {customer, channel, category, granted false, source
 *     "unsubscribe_link", at: now} to keep, and a page that says it is
 *     done. The item's external id is the hex SHA-256 of the token, so the
 *     writer keeps a token's unsubscribe once however often it is posted.
 *   A token that does not verify (forged, changed, expired, of another
 *     purpose, of a key no longer held): 404, the same page whatever the
 *     reason; the reason is the label. A POST without One-Click: 400.
 *
 * Like a channel handler, it reads plain data and writes nowhere: the
 * server hands the item to the writer and answers once it is durable.
 * Thread-safe.
 */
#ifndef INGEST_UNSUBSCRIBE_H
#define INGEST_UNSUBSCRIBE_H

#include "channel.h"
#include "rt_signed.h"

/* The route. */
#define UNSUBSCRIBE_ROUTE "/u/{token}"

/* The inbox id the writer keeps unsubscribes under (ingest.raw,
 * ingest.messages): ':' is in no configured inbox's id, so no provider's
 * message ids can meet the tokens' hashes. */
#define UNSUBSCRIBE_INBOX ":unsubscribe"

/* The ConsentChanged source of these. */
#define UNSUBSCRIBE_SOURCE "unsubscribe_link"

/* Reads a request for the link with token (the route's {token}); keys may
 * be NULL (none configured: every token is refused as unknown_key).
 * Returns 0 with result->response (an HTML page, response_type set) and,
 * for an accepted POST, one ConsentChanged item, with *inbox set to the
 * inbox to keep it under (id UNSUBSCRIBE_INBOX, the link's channel,
 * config left as it was). Returns -1 with result's status, label, reason
 * and an HTML page in response: 404 a token refused (label: its
 * rt_signed_reason), 400 "not_one_click", 405 "method_not_allowed", 503
 * "no_memory". */
int unsubscribe_handle (const rt_signed_keys_t *keys, const char *token,
                        const ingest_request_t *req, ingest_inbox_t *inbox,
                        ingest_result_t *result);

/* Sets a refusal (status, label, reason) and its page in result->response
 * (404 the link does not verify, 400 not One-Click, any other status "try
 * again later"), for the server's own failures too (503 not stored in
 * time, stopping). Returns -1. */
int unsubscribe_refusal (ingest_result_t *result, int status, const char *label,
                         const char *reason);

#endif
