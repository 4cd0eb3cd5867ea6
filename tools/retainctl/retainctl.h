/*
 * retainctl's commands. main.c dispatches argv[1] to one of these, passing
 * argc/argv from the command word on (argv[0] is e.g. "publish"). Each
 * returns the process exit status: 0 success, 1 failure, 2 bad usage.
 */
#ifndef RETAINCTL_H
#define RETAINCTL_H

int retainctl_migrate (int argc, char **argv);
int retainctl_publish (int argc, char **argv);
int retainctl_tail (int argc, char **argv);
int retainctl_offsets (int argc, char **argv);
int retainctl_keygen (int argc, char **argv);
int retainctl_inbox (int argc, char **argv);
int retainctl_churn (int argc, char **argv);

#endif
