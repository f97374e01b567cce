/* Log-linear latency histogram: exact below 64 ns, then 64 buckets per power
 * of two, so a percentile is within 1/64 (1.6%) of the true value. Values
 * are nanoseconds; the exact maximum is kept beside the buckets. */
#ifndef CHATD_BENCH_HIST_H
#define CHATD_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP  44 /* values up to 2^44 ns (about 4.9 hours); above: clamped */
#define HIST_BUCKETS  (HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[HIST_BUCKETS];
} hist_t;

void hist_reset(hist_t *h);
void hist_record(hist_t *h, uint64_t ns);
/* Adds every sample of src to dst. */
void hist_merge(hist_t *dst, const hist_t *src);
/* The value at quantile q (0..1) in nanoseconds: the middle of its bucket,
 * never above the maximum; 0 when the histogram is empty. */
uint64_t hist_quantile(const hist_t *h, double q);

#endif
