/*
 * The scheduler slice the data-plane threads ask for (Linux 6.12+, EEVDF).
 *
 * A fair task's slice is how long it may run before the scheduler picks another, and
 * under EEVDF also how soon it is due once woken: a task with a shorter slice has an
 * earlier virtual deadline, so it is picked first and may preempt the task running
 * when it wakes (sched_setattr(2), sched_runtime for SCHED_OTHER; kernel 6.12,
 * "sched/eevdf: Allow shorter slices to wakeup-preempt"). A relay thread runs a few
 * microseconds per wake-up and is woken by every segment, so on cores shared with the
 * clients and servers it relays for, a short slice keeps it from waiting out the
 * running task's slice (up to a tick, 4 ms at CONFIG_HZ=250): the tail that made the
 * 2-thread p99 (docs/bench.md, "p99 at two threads").
 *
 * Older kernels ignore sched_runtime for fair tasks: the call succeeds and changes
 * nothing. A thread the operator put under another policy (chrt: real-time, idle) is left
 * so; SCHED_BATCH keeps its policy and gets the slice. A refused call (a seccomp filter,
 * a kernel without sched_setattr) leaves the thread at the default; the data plane works
 * the same, only its tail is longer.
 */
#ifndef SWARMNET_SCHED_SLICE_H
#define SWARMNET_SCHED_SLICE_H

#include <stdint.h>

/* Bounds the kernel accepts for a custom slice (kernel/sched/syscalls.c clamps to these). */
#define SLICE_MIN_US 100
#define SLICE_MAX_US 100000

/* The slice, in microseconds, that data-plane threads started from now on ask for;
 * 0 keeps the kernel's default. 0 or -EINVAL (outside SLICE_MIN_US..SLICE_MAX_US). */
int sched_slice_set(uint32_t us);

/* Asks for the set slice for the calling thread; 0, or -errno of sched_setattr. */
int sched_slice_apply(void);

#endif
