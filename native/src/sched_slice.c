/* The data-plane threads' scheduler slice: see sched_slice.h. */
#define _GNU_SOURCE
#include "sched_slice.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr as sched_setattr(2) documents it; glibc has no wrapper, and
 * <linux/sched/types.h> clashes with glibc's <sched.h>. */
struct slice_attr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime; /* for SCHED_OTHER: the custom slice, in ns (6.12+) */
  uint64_t sched_deadline;
  uint64_t sched_period;
};

static _Atomic uint32_t slice_us;

int sched_slice_set(uint32_t us) {
  if (us != 0 && (us < SLICE_MIN_US || us > SLICE_MAX_US)) return -EINVAL;
  atomic_store(&slice_us, us);
  return 0;
}

int sched_slice_apply(void) {
  uint32_t us = atomic_load(&slice_us);
  if (us == 0) return 0;
  /* Only a fair thread: a policy the operator chose (chrt: real-time, idle) stays as it is. */
  int policy = sched_getscheduler(0);
  if (policy < 0) return -errno;
  policy &= ~SCHED_RESET_ON_FORK;
  if (policy != SCHED_OTHER && policy != SCHED_BATCH) return 0;
  /* Keep the thread's nice level: sched_setattr sets it with the policy. */
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, 0);
  if (nice == -1 && errno != 0) nice = 0;
  struct slice_attr a = {.size = sizeof a, .sched_policy = (uint32_t)policy, .sched_nice = nice, .sched_runtime = (uint64_t)us * 1000};
  return syscall(SYS_sched_setattr, 0, &a, 0) < 0 ? -errno : 0;
}
