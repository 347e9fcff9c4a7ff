/* fastgd fused optimizer kernels (see fastgd_optim.h). optim_impl.h is a template over the
 * element type: it is included once for float and once for double, so both dtypes run the
 * same source with no upcasting. */
#include <math.h>
#include "fastgd_optim.h"
#include "fgd_common.h"
#include "parallel.h"


#define T float
#define SFX f32
#define SQRT sqrtf
#include "optim_impl.h"
#undef T
#undef SFX
#undef SQRT

#define T double
#define SFX f64
#define SQRT sqrt
#include "optim_impl.h"
#undef T
#undef SFX
#undef SQRT

/* The memory traffic of an Adam step with none of its arithmetic (a benchmark's bound):
 * reads p, g, m, v and writes p, m, v, over the same threads and slices as the updates. */
typedef struct {
    float *p, *m, *v;
    const float *g;
} stream_ctx;

FGD_HOT static void stream_range(const void *vctx, size_t t, size_t b, size_t e)
{
    const stream_ctx *c = (const stream_ctx *)vctx;
    float *restrict p = c->p, *restrict m = c->m, *restrict v = c->v;
    const float *restrict g = c->g;
    (void)t;
#pragma omp simd
    for (size_t i = b; i < e; i++) {
        float gi = g[i];
        p[i] = p[i] + gi;
        m[i] = m[i] + gi;
        v[i] = v[i] + gi;
    }
}

void fgd_stream_probe_f32(float *p, const float *g, float *m, float *v, size_t n, int nthreads)
{
    stream_ctx c = {p, m, v, g};
    fgd_for_ranges(1, &n, nthreads, stream_range, &c);
}
