/*
 * loadgen: what its two files share. loadgen.c schedules the requests
 * (open or closed loop), keeps each one's fate and prints the figures;
 * http.c speaks HTTP/1.1 on one connection (connect, write a request made
 * from the templates, read and frame the answer) and tells the scheduler
 * what happened through loadgen_connected, loadgen_answered and
 * loadgen_failed. Everything here belongs to one worker thread: no locks.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include <event2/event.h>

#define LOADGEN_IN_CAP         16384 /* answer bytes buffered: the longest head accepted */
#define LOADGEN_STATUS_ERROR   0     /* a request's fate: the connection failed */
#define LOADGEN_STATUS_TIMEOUT (-1)  /* unanswered within the timeout */
#define LOADGEN_STATUS_PENDING INT32_MIN

/* A growable byte buffer. */
typedef struct {
    char *data; /* the bytes */
    size_t len; /* used */
    size_t cap; /* allocated */
} loadgen_bytes_t;

/* One piece of a template: literal bytes or a value made per request. */
typedef enum { LOADGEN_LIT, LOADGEN_SEQ, LOADGEN_SEQ_MOD, LOADGEN_DUE_US } loadgen_piece_kind_t;

typedef struct {
    loadgen_piece_kind_t kind; /* what this piece renders to */
    const char *lit;           /* LOADGEN_LIT: the bytes (inside the template's text) */
    size_t len;                /* LOADGEN_LIT: their length */
    uint64_t mod;              /* LOADGEN_SEQ_MOD: the modulus */
} loadgen_piece_t;

/* A header block or a body with {seq}, {seq%N} and {due_us} in it. */
typedef struct {
    char *text;             /* the template as written (owns the literal bytes) */
    loadgen_piece_t *piece; /* its pieces, in order */
    size_t npieces;         /* number of pieces */
} loadgen_template_t;

typedef struct {
    struct sockaddr_storage addr; /* the server, resolved once */
    socklen_t addrlen;            /* length of addr */
    loadgen_template_t head;      /* request line and headers, without Content-Length */
    loadgen_template_t body;      /* body; npieces 0 when there is none */
    bool has_body;                /* send a body (and its Content-Length) */
    bool head_method;             /* HEAD: answers carry no body */
    double rate;                  /* requests/s; 0: closed loop */
    double duration_s;            /* how long requests are issued */
    double timeout_s;             /* from due time to giving a request up */
    double drain_s;               /* after the duration, the wait for answers */
    int connections;              /* keep-alive connections, all threads */
    int threads;                  /* event loops */
    uint64_t seq_start;           /* {seq} of request 0 */
    int64_t scheduled;            /* open loop: requests due in the run */
    int64_t t0_ns;                /* monotonic time request 0 is due (set after warm-up) */
    int64_t wall0_us;             /* the wall clock at t0_ns */
} loadgen_config_t;

/* Where a connection is in reading an answer. */
typedef enum {
    LOADGEN_STATUS_LINE,
    LOADGEN_HEADERS,
    LOADGEN_BODY,
    LOADGEN_CHUNK_SIZE,
    LOADGEN_CHUNK_DATA,
    LOADGEN_CHUNK_END,
    LOADGEN_TRAILERS,
    LOADGEN_UNTIL_EOF
} loadgen_read_state_t;

typedef struct loadgen_worker loadgen_worker_t;

typedef struct {
    loadgen_worker_t *worker;   /* owner */
    int fd;                     /* -1 while disconnected */
    struct event *rev;          /* readable, persistent while connected */
    struct event *wev;          /* writable: the connect's end, or room after a short write */
    bool connected;             /* the connect has completed */
    loadgen_bytes_t out;        /* the request being written */
    size_t out_off;             /* bytes of out already written */
    char in[LOADGEN_IN_CAP];    /* answer bytes not yet parsed */
    size_t in_len;              /* how many */
    int64_t req;                /* request in flight (worker's index), -1 when idle */
    loadgen_read_state_t state; /* answer parsing */
    int status;                 /* the answer's status code */
    int64_t content_length;     /* -1 when the answer names none */
    int64_t left;               /* body or chunk bytes still to read */
    bool chunked;               /* Transfer-Encoding: chunked */
    bool close_after;           /* the server closes after this answer */
} loadgen_conn_t;

struct loadgen_worker {
    const loadgen_config_t *cfg; /* shared; read-only for the workers */
    int index;                   /* k: takes requests k, k+T, ... */
    pthread_t thread;            /* its thread */
    pthread_barrier_t *warm;     /* passed when every thread has opened its connections */
    pthread_barrier_t *go;       /* passed when main has set t0 */
    struct event_base *base;     /* its loop */
    struct event *due_timer;     /* fires when the next request is due */
    struct event *tick;          /* timeouts and the end of the run */
    struct event *start;         /* t0 */
    loadgen_conn_t *conn;        /* its connections */
    int nconns;                  /* how many */
    int *idle;                   /* stack of idle connections (most recent on top) */
    int nidle;                   /* its depth */
    int warming;                 /* connections still opening before t0 */
    int warm_failed;             /* of them, how many could not connect */
    int64_t n;                   /* requests of this worker (grows in closed loop) */
    int64_t cap;                 /* room in the arrays below */
    int64_t next;                /* next request to send */
    int64_t resolved;            /* requests answered or given up */
    int64_t *due_ns;             /* closed loop, per request: when it was sent */
    int64_t *lat_us;             /* per request: latency from due time */
    int32_t *status;             /* per request: status, LOADGEN_STATUS_* */
    int64_t sent;                /* requests written in full to a connection */
    int64_t last_answer_ns;      /* monotonic time of the last answer */
    loadgen_bytes_t body;        /* the body of the request being made */
    bool failed;                 /* out of memory or a libevent failure */
};

/* ---- http.c ---- */

/* Appends n bytes to b: 0, or -1 out of memory (b unchanged). */
int loadgen_bytes_add (loadgen_bytes_t *b, const void *src, size_t n);

/* Splits `text` (NUL-terminated at text[len]; taken over, freed by
 * loadgen_template_free even on failure) into pieces: 0, or -1 on a
 * malformed {seq%N} or out of memory. */
int loadgen_template_parse (loadgen_template_t *t, char *text, size_t len);
void loadgen_template_free (loadgen_template_t *t);

/* Starts a non-blocking connect of c: 0 (loadgen_connected follows when
 * it completes, loadgen_failed when it does not), or -1 with nothing left
 * open. */
int loadgen_conn_connect (loadgen_conn_t *c);

/* Closes c, if open; safe to call twice. */
void loadgen_conn_close (loadgen_conn_t *c);

/* Makes request j (number seq, due at due_us on the wall clock) from the
 * templates and writes it on c, connecting first when c is closed: 0, 1
 * when the connection failed at once (c closed; an error for j), -1 out of
 * memory. Its answer comes through loadgen_answered or loadgen_failed. */
int loadgen_conn_send (loadgen_conn_t *c, int64_t j, uint64_t seq, int64_t due_us);

/* ---- loadgen.c, called by http.c ---- */

/* c's connect has completed. */
void loadgen_connected (loadgen_conn_t *c);

/* A whole answer to c->req has arrived (status in c->status). */
void loadgen_answered (loadgen_conn_t *c);

/* c failed (refused, reset, a malformed answer): closes it; the request in
 * flight, if any, is an error. */
void loadgen_failed (loadgen_conn_t *c);

#endif
