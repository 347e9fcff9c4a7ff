/* fastgd.kernels' side of <fastgd/fastgd.h> (see capi.c): the table's type and ABI
 * version, without the macros that map the kernels' names to the table (this module calls
 * the kernels themselves). Include this, never <fastgd/fastgd.h>, inside fastgd.kernels. */
#ifndef FASTGD_CAPI_IMPL_H
#define FASTGD_CAPI_IMPL_H
#define FASTGD_CAPI_PROVIDER 1
#include "fastgd/fastgd.h"
/* The table (a const fgd_capi) as PyCapsule_New takes it. */
void *fgd_capi_table(void);
#endif
