/* Splitting an elementwise update over threads.
 *
 * A "tensor list" is ntensors arrays of numel[t] elements each. fgd_for_ranges() calls
 * fn(ctx, t, begin, end) on pieces that together cover every element exactly once. Below
 * FGD_PARALLEL_MIN elements (or with one thread) it runs serially, in order; above, the
 * concatenated range is cut into equal contiguous slices, one per thread. Elementwise
 * updates give the same bits whatever the thread count.
 */
#ifndef FASTGD_PARALLEL_H
#define FASTGD_PARALLEL_H
#include <stddef.h>

#define FGD_PARALLEL_MIN ((size_t)1 << 16)

typedef void (*fgd_range_fn)(const void *ctx, size_t t, size_t begin, size_t end);

void fgd_for_ranges(size_t ntensors, const size_t *numel, int nthreads,
                    fgd_range_fn fn, const void *ctx);

/* Threads used when the caller passes nthreads <= 0; initialised from OpenMP (OMP_NUM_THREADS). */
int fgd_default_threads(void);
/* 1 when built with OpenMP. */
int fgd_have_openmp(void);

#endif
