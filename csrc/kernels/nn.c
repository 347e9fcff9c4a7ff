/* fastgd neural-network kernels (see fastgd_nn.h); nn_impl.h is the body, instantiated for
 * float and double. */
#include <math.h>
#include <string.h>
#include "fastgd_nn.h"

#if defined(FASTGD_MULTIVERSION) && defined(__x86_64__) && defined(__linux__) && \
    defined(__has_attribute)
#if __has_attribute(target_clones)
#define FGD_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef FGD_HOT
#define FGD_HOT
#endif

#define FGD_CAT_(a, b) a##_##b
#define FGD_CAT(a, b) FGD_CAT_(a, b)

#define T float
#define SFX f32
#define SQRT sqrtf
#define EXP expf
#define LOG log
#define LOG1P log1pf
#define TANH tanhf
#include "nn_impl.h"
#undef T
#undef SFX
#undef SQRT
#undef EXP
#undef LOG
#undef LOG1P
#undef TANH

#define T double
#define SFX f64
#define SQRT sqrt
#define EXP exp
#define LOG log
#define LOG1P log1p
#define TANH tanh
#include "nn_impl.h"

void fgd_gather_i64(const int64_t *src, const int64_t *idx, size_t n, int64_t *dst)
{
    for (size_t r = 0; r < n; r++)
        dst[r] = src[idx[r]];
}
