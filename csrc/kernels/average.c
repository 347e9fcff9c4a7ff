/* Weight averaging (see fastgd_optim.h): the running averages of fastgd.optim.swa_utils
 * (torch.optim.swa_utils' EMA and SWA) over a list of arrays in one pass. The scalar
 * factors are computed once per call, in double (then cast to the arrays' dtype); each
 * element's update is one expression of its own element, so any thread count gives the same
 * bits. The expressions follow torch operation by operation. */
#include <stdint.h>
#include <string.h>
#include "fastgd_optim.h"
#include "fgd_common.h"
#include "parallel.h"

/* torch.lerp: start + w (end - start) for |w| < 0.5, else end - (end - start)(1 - w). */
#define AVG_LERP(T, start, end, w, small_w) \
    ((small_w) ? (start) + (w) * ((end) - (start)) : (end) - ((end) - (start)) * ((T)1 - (w)))

#define FGD_AVERAGE_FN(T, SFX)                                                                \
    typedef struct {                                                                          \
        T *const *avg;                                                                        \
        const T *const *cur;                                                                  \
        int kind;                                                                             \
        T a, b; /* LERP kinds: the weight, b unused; SWA: the divisor; EMA_SUM: the factors */\
    } avg_ctx_##SFX;                                                                          \
                                                                                              \
    FGD_HOT static void avg_range_##SFX(const void *vctx, size_t t, size_t b, size_t e)       \
    {                                                                                         \
        const avg_ctx_##SFX *c = (const avg_ctx_##SFX *)vctx;                                 \
        T *restrict s = c->avg[t] + b;                                                        \
        const T *restrict x = c->cur[t] + b;                                                  \
        const size_t n = e - b;                                                               \
        const T fa = c->a, fb = c->b;                                                         \
        switch (c->kind) {                                                                    \
        case FGD_AVG_COPY:                                                                    \
            memcpy(s, x, n * sizeof(T));                                                      \
            break;                                                                            \
        case FGD_AVG_EMA:                                                                     \
        case FGD_AVG_SWA_LERP: {                                                              \
            const int small_w = (fa < 0 ? -fa : fa) < (T)0.5;                                 \
            _Pragma("omp simd") for (size_t i = 0; i < n; i++)                                \
                s[i] = AVG_LERP(T, s[i], x[i], fa, small_w);                                  \
            break;                                                                            \
        }                                                                                     \
        case FGD_AVG_SWA:                                                                     \
            _Pragma("omp simd") for (size_t i = 0; i < n; i++)                                \
                s[i] = s[i] + (x[i] - s[i]) / fa;                                             \
            break;                                                                            \
        case FGD_AVG_EMA_SUM:                                                                 \
            _Pragma("omp simd") for (size_t i = 0; i < n; i++)                                \
                s[i] = fa * s[i] + fb * x[i];                                                 \
            break;                                                                            \
        default:                                                                              \
            break;                                                                            \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    void fgd_average_##SFX(size_t ntensors, T *const *avg, const T *const *cur,               \
                           const size_t *numel, const fgd_average_hparams *hp, int nthreads)  \
    {                                                                                         \
        avg_ctx_##SFX c = {avg, cur, hp->kind, (T)0, (T)0};                                   \
        switch (hp->kind) {                                                                   \
        case FGD_AVG_EMA:                                                                     \
            c.a = (T)(1.0 - hp->decay);                                                       \
            break;                                                                            \
        case FGD_AVG_SWA_LERP:                                                                \
            /* torch: 1 / (n_averaged + 1) of an int64 tensor, a float32 tensor */            \
            c.a = (T)(1.0f / (float)(hp->n_averaged + 1));                                    \
            break;                                                                            \
        case FGD_AVG_SWA:                                                                     \
            /* torch: (n_averaged + 1), an int64 tensor, promoted to the arrays' dtype */     \
            c.a = (T)(hp->n_averaged + 1);                                                    \
            break;                                                                            \
        case FGD_AVG_EMA_SUM:                                                                 \
            c.a = (T)hp->decay;                                                               \
            c.b = (T)(1.0 - hp->decay);                                                       \
            break;                                                                            \
        default:                                                                              \
            break;                                                                            \
        }                                                                                     \
        fgd_for_ranges(ntensors, numel, nthreads, avg_range_##SFX, &c);                       \
    }

FGD_AVERAGE_FN(float, f32)
FGD_AVERAGE_FN(double, f64)
