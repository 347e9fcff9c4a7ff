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
