/* fastgd fused optimizer kernels (see fastgd_optim.h). optim_impl.h is a template over the
 * element type: it is included once for float and once for double, so both dtypes run the
 * same source with no upcasting. */
#include <math.h>
#include "fastgd_optim.h"
#include "parallel.h"

/* Hot loops are compiled for AVX-512, AVX2 and baseline x86-64; the loader picks one at run
 * time, so the binary stays portable (no -march=native). The build compiles with
 * -ffp-contract=off, so every clone rounds exactly like the numpy reference. */
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
