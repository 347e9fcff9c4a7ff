/* fastgd neural-network kernels (see fastgd_nn.h); nn_impl.h is the body, instantiated for
 * float and double. */
#include <math.h>
#include <string.h>
#include "fastgd_nn.h"
#include "fgd_common.h"


#define T float
#define SFX f32
#define EXP expf
#define LOG1P log1pf
#define TANH tanhf
#include "nn_impl.h"
#undef T
#undef SFX
#undef EXP
#undef LOG1P
#undef TANH

#define T double
#define SFX f64
#define EXP exp
#define LOG1P log1p
#define TANH tanh
#include "nn_impl.h"

void fgd_gather_i64(const int64_t *src, const int64_t *idx, size_t n, int64_t *dst)
{
    for (size_t r = 0; r < n; r++)
        dst[r] = src[idx[r]];
}
