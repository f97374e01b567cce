/* The server's memory and CPU, read from /proc when it runs on this host. */
#ifndef CHATD_BENCH_PROCSTAT_H
#define CHATD_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/* VmRSS of pid in KiB, or -1 when it cannot be read. */
long proc_rss_kb(pid_t pid);

/* User + system CPU time of pid in seconds, or -1 when it cannot be read. */
double proc_cpu_s(pid_t pid);

/* This process's own user + system CPU time in seconds. */
double self_cpu_s(void);

/* The process that listens on TCP port (IPv4 or IPv6), or -1 when none is
 * visible (another user's process, or none at all). */
pid_t proc_find_listener(int port);

/* Raises RLIMIT_NOFILE towards need (as far as the hard limit allows).
 * Returns the soft limit in force afterwards. */
long raise_nofile(long need);

#endif
