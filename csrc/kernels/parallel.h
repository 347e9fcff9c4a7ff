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
/* Called by every thread at the start of a parallel region: the first time an OpenMP
 * worker (thread number t >= 1) calls it, it binds itself to the t-th CPU the process may
 * use (Linux). The calling (master) thread is never bound. Without it, a worker woken
 * after sleeping is often placed on the master's CPU (seen on 2-core KVM machines: a
 * 2-thread update then took 7x the 1-thread time). Not done when FASTGD_PIN_WORKERS=0 or
 * when the user placed the threads (OMP_PROC_BIND, OMP_PLACES, GOMP_CPU_AFFINITY). */
void fgd_pin_worker(void);
/* 1 when workers are bound (see fgd_pin_worker). */
int fgd_pins_workers(void);

/* With on != 0, the element-wise updates run with subnormal inputs and results flushed to
 * zero (x86-64 MXCSR FTZ and DAZ, set on each thread for the kernel's duration and put
 * back after it: nothing else in the process is affected). Returns 1 where supported (x86-64),
 * 0 elsewhere (the setting is then ignored). Off by default (IEEE gradual underflow, as
 * numpy and PyTorch compute). */
int fgd_set_flush_denormal(int on);
int fgd_get_flush_denormal(void);

/* 1 when built with OpenMP. */
int fgd_have_openmp(void);

#endif
