/*
 * rt_signal: clean stop on SIGTERM and SIGINT.
 *
 * rt_signal_install makes SIGTERM and SIGINT set a flag and write a byte to
 * a self-pipe, so a loop can poll the pipe's read end next to its sockets
 * (zmq_poll accepts plain file descriptors) and a blocking wait wakes at
 * once. SIGPIPE is ignored. This flag is the process-wide state signals
 * force on us; nothing else in retain is global.
 */
#ifndef RT_SIGNAL_H
#define RT_SIGNAL_H

#include <stdbool.h>

/* Installs the handlers; returns 0 or -1 (errno set). */
int rt_signal_install (void);

/* True once SIGTERM or SIGINT arrived. Async-signal-safe to read. */
bool rt_signal_stopping (void);

/* The read end of the self-pipe, readable after a stop signal; -1 before
 * install. */
int rt_signal_fd (void);

/* Sets the stop flag as if a signal had come (for tests and fatal paths). */
void rt_signal_request_stop (void);

/* Sleeps up to ms milliseconds, returning early (true) when a stop was
 * requested. */
bool rt_signal_sleep_ms (int ms);

#endif
