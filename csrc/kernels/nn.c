/* fastgd neural-network kernels (see fastgd_nn.h); nn_impl.h is the body, instantiated for
 * float and double. */
#include <math.h>
#include <string.h>
#include "fastgd_nn.h"
#include "fgd_common.h"


/* exp over a block of float32 values, vectorised (each clone's SIMD width): Cephes's
 * expf (range reduction by ln 2 in two parts, a degree-6 polynomial, the exponent put in
 * by bits), within 2 ulp of the correctly rounded value on the range where exp is a
 * normal float; exp(x) = 0 for x < -87.33 (where it would be subnormal) and NaN stays NaN.
 * y may be x. Used where every input is <= 0 (softmax, cross-entropy after the row max is
 * subtracted); x > 88.37 gives +inf. */
FGD_HOT static void exp_block_f32(const float *x, float *y, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float big = v > 88.37626f ? 1.0f : 0.0f;
        float tiny = v < -87.33654f ? 1.0f : 0.0f;
        float c = v > 88.37626f ? 88.37626f : v;   /* NaN passes through both tests */
        c = c < -87.33654f ? -87.33654f : c;
        float k = floorf(c * 1.44269504088896341f + 0.5f);
        float r = c - k * 0.693359375f;
        r = r - k * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * (r * r) + r + 1.0f;
        /* k is in [-126, 128] here unless c is NaN (then k is NaN: use 0, p is NaN) */
        int e = (k == k) ? (int)k : 0;
        union { int i; float f; } two;
        two.i = (e + 127) << 23;
        float out = e == 128 ? p * 2.0f * 1.70141183e38f : p * two.f;
        out = big > 0 ? INFINITY : out;
        y[i] = tiny > 0 ? 0.0f : out;
    }
}

static void exp_block_f64(const double *x, double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = exp(x[i]);
}

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
