#include "core/thread_sched.h"

#include <pthread.h>
#include <sched.h>

static int set_policy(int policy) {
    struct sched_param param = {.sched_priority = 0};
    return pthread_setschedparam(pthread_self(), policy, &param);
}

int thread_sched_batch(void) {
    return set_policy(SCHED_BATCH);
}

int thread_sched_idle(void) {
    return set_policy(SCHED_IDLE);
}
