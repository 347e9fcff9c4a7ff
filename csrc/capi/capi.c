/* The table behind <fastgd/fastgd.h>: the kernels of <fastgd/optim.h> in the slots' order,
 * exported by fastgd.kernels as the capsule fastgd.kernels._C_API (csrc/kernels.pyx).
 * Compiled with -Werror=incompatible-pointer-types: a slot whose type differs from its
 * kernel's prototype fails the build. */
#include "capi.h"

#ifndef FASTGD_VERSION
#error "FASTGD_VERSION (the package version) is defined by CMakeLists.txt"
#endif

static const fgd_capi table = {
    .abi_major = FASTGD_ABI_VERSION_MAJOR,
    .abi_minor = FASTGD_ABI_VERSION_MINOR,
    .size = sizeof(fgd_capi),
    .fastgd_version = FASTGD_VERSION,
    .sgd_f32 = fgd_sgd_f32,
    .sgd_f64 = fgd_sgd_f64,
    .adagrad_f32 = fgd_adagrad_f32,
    .adagrad_f64 = fgd_adagrad_f64,
    .rmsprop_f32 = fgd_rmsprop_f32,
    .rmsprop_f64 = fgd_rmsprop_f64,
    .adam_f32 = fgd_adam_f32,
    .adam_f64 = fgd_adam_f64,
    .adamax_f32 = fgd_adamax_f32,
    .adamax_f64 = fgd_adamax_f64,
    .lion_f32 = fgd_lion_f32,
    .lion_f64 = fgd_lion_f64,
    .adadelta_f32 = fgd_adadelta_f32,
    .adadelta_f64 = fgd_adadelta_f64,
    .radam_f32 = fgd_radam_f32,
    .radam_f64 = fgd_radam_f64,
    .nadam_f32 = fgd_nadam_f32,
    .nadam_f64 = fgd_nadam_f64,
    .norm_blocks = fgd_norm_blocks,
    .norm_f32 = fgd_norm_f32,
    .norm_f64 = fgd_norm_f64,
    .scale_f32 = fgd_scale_f32,
    .scale_f64 = fgd_scale_f64,
    .average_f32 = fgd_average_f32,
    .average_f64 = fgd_average_f64,
};

void *fgd_capi_table(void)
{
    return (void *)&table;
}
