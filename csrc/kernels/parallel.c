#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include "parallel.h"

#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__linux__) && defined(_OPENMP)
#include <sched.h>
#define FGD_CAN_PIN 1
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FGD_HAVE_MXCSR 1
#endif

/* See fgd_set_flush_denormal. */
static int flush_denormal = 0;

int fgd_set_flush_denormal(int on)
{
#ifdef FGD_HAVE_MXCSR
    flush_denormal = on != 0;
    return 1;
#else
    (void)on;
    return 0;
#endif
}

int fgd_get_flush_denormal(void)
{
    return flush_denormal;
}

/* Flush-to-zero and denormals-are-zero on this thread while a kernel runs (when asked),
 * then the caller's setting back. */
#ifdef FGD_HAVE_MXCSR
#define FGD_MXCSR_FTZ_DAZ 0x8040u
#define FTZ_BEGIN                                                                         \
    unsigned int saved_csr = 0;                                                           \
    if (flush_denormal) {                                                                 \
        saved_csr = _mm_getcsr();                                                         \
        _mm_setcsr(saved_csr | FGD_MXCSR_FTZ_DAZ);                                        \
    }
#define FTZ_END                                                                           \
    if (flush_denormal)                                                                   \
        _mm_setcsr(saved_csr);
#else
#define FTZ_BEGIN
#define FTZ_END
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

#ifdef FGD_CAN_PIN
/* -1: not decided yet; 0: never pin; 1: pin the workers */
static int pin_mode = -1;
static _Thread_local int pinned = 0;

static int decide_pin_mode(void)
{
    const char *own = getenv("FASTGD_PIN_WORKERS");
    if (own && own[0] == '0')
        return 0;
    /* the user's own placement wins */
    if (getenv("OMP_PROC_BIND") || getenv("OMP_PLACES") || getenv("GOMP_CPU_AFFINITY"))
        return 0;
    return 1;
}
#endif

void fgd_pin_worker(void)
{
#ifdef FGD_CAN_PIN
    if (pinned)
        return;
    pinned = 1;
    int t = omp_get_thread_num();
    if (t == 0)
        return;
    if (!fgd_pins_workers())
        return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return;
    int count = CPU_COUNT(&allowed);
    if (count < 2)
        return;
    int want = t % count, seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed))
            continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
#endif
}

int fgd_pins_workers(void)
{
#ifdef FGD_CAN_PIN
    /* decided once; threads that decide at the same time store the same answer (atomic
     * accesses: no data race) */
    int mode = __atomic_load_n(&pin_mode, __ATOMIC_RELAXED);
    if (mode < 0) {
        mode = decide_pin_mode();
        __atomic_store_n(&pin_mode, mode, __ATOMIC_RELAXED);
    }
    return mode;
#else
    return 0;
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
            fgd_pin_worker();
            size_t nt = (size_t)omp_get_num_threads();
            size_t id = (size_t)omp_get_thread_num();
            /* Slices are whole blocks of 64 elements, so each keeps long aligned-length vector runs. */
            size_t lo = (total / 64 * id / nt) * 64;
            size_t hi = id + 1 == nt ? total : (total / 64 * (id + 1) / nt) * 64;
            FTZ_BEGIN
            run_slice(ntensors, numel, lo, hi, fn, ctx);
            FTZ_END
        }
        return;
    }
#endif
    (void)nthreads;
    FTZ_BEGIN
    for (size_t t = 0; t < ntensors; t++)
        if (numel[t])
            fn(ctx, t, 0, numel[t]);
    FTZ_END
}
