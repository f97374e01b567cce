#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v) {
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned exp = 63u - (unsigned)__builtin_clzll(v);
    if (exp > HIST_MAX_EXP)
        return HIST_BUCKETS - 1;
    unsigned mantissa = (unsigned)(v >> (exp - HIST_SUB_BITS)) - HIST_SUB;
    return HIST_SUB + (exp - HIST_SUB_BITS) * HIST_SUB + mantissa;
}

/* Lowest value and width of a bucket. */
static void bucket_range(unsigned idx, uint64_t *low, uint64_t *width) {
    if (idx < HIST_SUB) {
        *low = idx;
        *width = 1;
        return;
    }
    unsigned shift = (idx - HIST_SUB) / HIST_SUB;
    uint64_t mantissa = (idx - HIST_SUB) % HIST_SUB + HIST_SUB;
    *low = mantissa << shift;
    *width = (uint64_t)1 << shift;
}

void hist_reset(hist_t *h) {
    memset(h, 0, sizeof(*h));
}

void hist_record(hist_t *h, uint64_t ns) {
    h->buckets[bucket_of(ns)]++;
    h->count++;
    if (ns > h->max)
        h->max = ns;
}

void hist_merge(hist_t *dst, const hist_t *src) {
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const hist_t *h, double q) {
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen > rank) {
            uint64_t low, width;
            bucket_range(i, &low, &width);
            uint64_t mid = low + width / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
