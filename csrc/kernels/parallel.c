#include "parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int fgd_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fgd_default_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void run_slice(size_t ntensors, const size_t *numel, size_t lo, size_t hi,
                      fgd_range_fn fn, const void *ctx)
{
    size_t t = 0, start = 0; /* start: global offset of tensor t */
    while (t < ntensors && start + numel[t] <= lo) {
        start += numel[t];
        t++;
    }
    for (; t < ntensors && start < hi; start += numel[t], t++) {
        size_t b = lo > start ? lo - start : 0;
        size_t e = hi - start < numel[t] ? hi - start : numel[t];
        if (e > b)
            fn(ctx, t, b, e);
    }
}

void fgd_for_ranges(size_t ntensors, const size_t *numel, int nthreads,
                    fgd_range_fn fn, const void *ctx)
{
    size_t total = 0;
    for (size_t t = 0; t < ntensors; t++)
        total += numel[t];
    if (nthreads <= 0)
        nthreads = fgd_default_threads();
    size_t max_useful = total / (FGD_PARALLEL_MIN / 2);
    if ((size_t)nthreads > max_useful)
        nthreads = (int)(max_useful > 0 ? max_useful : 1);
#ifdef _OPENMP
    if (nthreads > 1) {
#pragma omp parallel num_threads(nthreads)
        {
            size_t nt = (size_t)omp_get_num_threads();
            size_t id = (size_t)omp_get_thread_num();
            /* Slices are whole blocks of 64 elements, so each keeps long aligned-length vector runs. */
            size_t lo = (total / 64 * id / nt) * 64;
            size_t hi = id + 1 == nt ? total : (total / 64 * (id + 1) / nt) * 64;
            run_slice(ntensors, numel, lo, hi, fn, ctx);
        }
        return;
    }
#endif
    (void)nthreads;
    for (size_t t = 0; t < ntensors; t++)
        if (numel[t])
            fn(ctx, t, 0, numel[t]);
}
