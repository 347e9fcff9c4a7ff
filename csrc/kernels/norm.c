/* Norms and scaling over a list of arrays (see fastgd_optim.h): the gradient clipping of
 * fastgd.nn.utils. The sum runs over fixed blocks of FGD_NORM_BLOCK elements (each summed in
 * double, in order), whatever the thread count, and the blocks' sums are added in order:
 * the same bits for any thread count. */
#include <math.h>
#include <stdlib.h>
#include "fastgd_optim.h"
#include "fgd_common.h"
#include "parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define FGD_NORM_BLOCK 4096

/* |x|^p summed (p > 0, finite), or the largest |x| (p infinite) of x[0:n], in double. */
#define FGD_NORM_BLOCK_FN(T, SFX)                                                             \
    FGD_HOT static double block_##SFX(const T *x, size_t n, double p)                         \
    {                                                                                         \
        double acc = 0;                                                                       \
        if (isinf(p)) {                                                                       \
            for (size_t i = 0; i < n; i++) {                                                  \
                double a = fabs((double)x[i]);                                                \
                acc = (a > acc || a != a) ? a : acc;                                          \
            }                                                                                 \
        } else if (p == 2.0 || p == 1.0) {                                                    \
            /* eight running sums (lane i % 8), added in order at the end: vectorisable, and \
             * the same bits for every clone and thread count */                              \
            double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                        \
            size_t n8 = n / 8 * 8;                                                            \
            if (p == 2.0) {                                                                   \
                for (size_t i = 0; i < n8; i += 8)                                            \
                    for (int k = 0; k < 8; k++)                                               \
                        lane[k] += (double)x[i + k] * (double)x[i + k];                       \
                for (size_t i = n8; i < n; i++)                                               \
                    lane[i - n8] += (double)x[i] * (double)x[i];                              \
            } else {                                                                          \
                for (size_t i = 0; i < n8; i += 8)                                            \
                    for (int k = 0; k < 8; k++)                                               \
                        lane[k] += fabs((double)x[i + k]);                                    \
                for (size_t i = n8; i < n; i++)                                               \
                    lane[i - n8] += fabs((double)x[i]);                                       \
            }                                                                                 \
            for (int k = 0; k < 8; k++)                                                       \
                acc += lane[k];                                                               \
        } else {                                                                              \
            for (size_t i = 0; i < n; i++)                                                    \
                acc += pow(fabs((double)x[i]), p);                                            \
        }                                                                                     \
        return acc;                                                                           \
    }

FGD_NORM_BLOCK_FN(float, f32)
FGD_NORM_BLOCK_FN(double, f64)

#define FGD_SCALE_SERIAL(T, SFX)                                                              \
    FGD_HOT static void scale_serial_##SFX(T *restrict x, size_t n, T f)                      \
    {                                                                                         \
        _Pragma("omp simd") for (size_t i = 0; i < n; i++) x[i] = x[i] * f;                   \
    }
FGD_SCALE_SERIAL(float, f32)
FGD_SCALE_SERIAL(double, f64)

#define FGD_NORM_FN(T, SFX)                                                                   \
    double fgd_norm_##SFX(size_t ntensors, const T *const *x, const size_t *numel,           \
                          double norm_type, double *partial, int nthreads)                    \
    {                                                                                         \
        size_t nblocks = 0;                                                                   \
        for (size_t t = 0; t < ntensors; t++)                                                 \
            nblocks += (numel[t] + FGD_NORM_BLOCK - 1) / FGD_NORM_BLOCK;                      \
        if (nthreads <= 0)                                                                    \
            nthreads = fgd_default_threads();                                                 \
        size_t total = 0;                                                                     \
        for (size_t t = 0; t < ntensors; t++)                                                 \
            total += numel[t];                                                                \
        if (total < FGD_PARALLEL_MIN)                                                         \
            nthreads = 1;                                                                     \
        (void)nthreads;                                                                       \
        /* block b of tensor t: partial[first[t] + b], filled in any order */                 \
        size_t b0 = 0;                                                                        \
        for (size_t t = 0; t < ntensors; t++) {                                               \
            long long nb = (long long)((numel[t] + FGD_NORM_BLOCK - 1) / FGD_NORM_BLOCK);     \
            const T *xt = x[t];                                                               \
            size_t nt = numel[t];                                                             \
            double *out = partial + b0;                                                       \
            if (nthreads > 1) {                                                               \
                FGD_OMP_FOR                                                                   \
                for (long long b = 0; b < nb; b++) {                                          \
                    size_t lo = (size_t)b * FGD_NORM_BLOCK;                                   \
                    size_t len = nt - lo < FGD_NORM_BLOCK ? nt - lo : FGD_NORM_BLOCK;         \
                    out[b] = block_##SFX(xt + lo, len, norm_type);                            \
                }                                                                             \
            } else {                                                                          \
                /* no parallel region at all below the threshold: its cost is microseconds */ \
                for (long long b = 0; b < nb; b++) {                                          \
                    size_t lo = (size_t)b * FGD_NORM_BLOCK;                                   \
                    size_t len = nt - lo < FGD_NORM_BLOCK ? nt - lo : FGD_NORM_BLOCK;         \
                    out[b] = block_##SFX(xt + lo, len, norm_type);                            \
                }                                                                             \
            }                                                                                 \
            b0 += (size_t)nb;                                                                 \
        }                                                                                     \
        double acc = 0;                                                                       \
        if (isinf(norm_type)) {                                                               \
            for (size_t b = 0; b < nblocks; b++)                                              \
                acc = (partial[b] > acc || partial[b] != partial[b]) ? partial[b] : acc;      \
            return acc;                                                                       \
        }                                                                                     \
        for (size_t b = 0; b < nblocks; b++)                                                  \
            acc += partial[b];                                                                \
        return norm_type == 2.0 ? sqrt(acc) : norm_type == 1.0 ? acc : pow(acc, 1.0 / norm_type); \
    }                                                                                         \
                                                                                              \
    void fgd_scale_##SFX(size_t ntensors, T *const *x, const size_t *numel, double factor,   \
                         int nthreads)                                                        \
    {                                                                                         \
        const T f = (T)factor;                                                                \
        size_t total = 0;                                                                     \
        for (size_t t = 0; t < ntensors; t++)                                                 \
            total += numel[t];                                                                \
        if (nthreads <= 0)                                                                    \
            nthreads = fgd_default_threads();                                                 \
        if (total < FGD_PARALLEL_MIN)                                                         \
            nthreads = 1;                                                                     \
        (void)nthreads;                                                                       \
        for (size_t t = 0; t < ntensors; t++) {                                               \
            T *restrict xt = x[t];                                                            \
            long long n = (long long)numel[t];                                                \
            if (nthreads > 1) {                                                               \
                FGD_OMP_FOR_SIMD                                                              \
                for (long long i = 0; i < n; i++)                                             \
                    xt[i] = xt[i] * f;                                                        \
            } else {                                                                          \
                scale_serial_##SFX(xt, (size_t)n, f);                                         \
            }                                                                                 \
        }                                                                                     \
    }

#ifdef _OPENMP
#define FGD_OMP_FOR _Pragma("omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)")
#define FGD_OMP_FOR_SIMD                                                                      \
    _Pragma("omp parallel for simd schedule(static) num_threads(nthreads) if (nthreads > 1)")
#else
#define FGD_OMP_FOR
#define FGD_OMP_FOR_SIMD
#endif

FGD_NORM_FN(float, f32)
FGD_NORM_FN(double, f64)

size_t fgd_norm_blocks(size_t ntensors, const size_t *numel)
{
    size_t nblocks = 0;
    for (size_t t = 0; t < ntensors; t++)
        nblocks += (numel[t] + FGD_NORM_BLOCK - 1) / FGD_NORM_BLOCK;
    return nblocks;
}
