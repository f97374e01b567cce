/* Scheduling policies for chatd's background threads.
 *
 * The I/O threads run at the normal policy. Threads that serve them are
 * moved out of its way:
 * - SCHED_BATCH (the store's threads): a wake-up from an I/O thread does not
 *   preempt that I/O thread. Sharing a core, the loop finishes what it is
 *   doing (reading every request of this iteration, flushing) before the
 *   writer runs, so the writer finds a whole group to commit instead of one
 *   request per wake-up and two context switches each.
 * - SCHED_IDLE (password hashing): runs only on CPU time nothing else wants.
 *
 * Both may be set without privileges. Each call affects the calling thread
 * only and returns 0, or an errno value (the caller logs it and goes on at the
 * normal policy). */
#ifndef CHATD_CORE_THREAD_SCHED_H
#define CHATD_CORE_THREAD_SCHED_H

int thread_sched_batch(void);
int thread_sched_idle(void);

#endif
