/*
 * imap: polling a support mailbox over IMAP with libcurl.
 *
 * One thread per e-mail inbox that has an IMAP configuration. It remembers
 * where it is as "<UIDVALIDITY>:<last UID>" in ingest.cursors (read at
 * start), fetches messages with a higher UID in order, parses each with
 * mime.h into an InboundMessage, and hands each message to the writer with
 * the new cursor in the same transaction: a message is never read twice
 * (the cursor commits with it) nor skipped (the cursor never passes a
 * message that was not committed). A changed UIDVALIDITY starts over from
 * the first UID, de-duplicated by Message-ID. A server that is down or slow
 * is retried with backoff (1 s doubling to 60 s).
 *
 * Inbox configuration (ingest.inboxes.config): "imap_url" (e.g.
 * "imaps://mail.example.com:993/INBOX" or "imap://127.0.0.1:1143/INBOX"),
 * "username", the password in the inbox secret, "poll_interval" seconds
 * (default 30), "insecure_tls" (default false: certificates are verified).
 */
#ifndef INGEST_IMAP_H
#define INGEST_IMAP_H

#include "channel.h"
#include "rt_metrics.h"
#include "writer.h"

typedef struct imap_poller_t imap_poller_t;

/* Starts polling `inbox` (copied) on a thread of its own. `dsn` is for
 * reading the cursor. NULL with err filled when the configuration is
 * unusable. */
imap_poller_t *imap_poller_start (const ingest_inbox_t *inbox, writer_t *writer, const char *dsn,
                                  rt_metrics_t *metrics, char *err, size_t errlen);

/* Stops the thread (finishing the message in hand) and frees the poller. */
void imap_poller_stop (imap_poller_t **self_p);

#endif
