/* A step that C code can run without Python: fastgd._optim.BoundUpdate.hook() hands one out
 * in a PyCapsule named FGD_HOOK_NAME, and fastgd._nn.Program.train_steps calls it after each
 * backward pass; Backup.hook() hands out a back-up's save and restore the same way.
 * Binding-level glue, not a kernel: it lives beside the .pyx files. */
#ifndef FASTGD_HOOK_H
#define FASTGD_HOOK_H
#include <stddef.h>

typedef struct fgd_hook {
    void (*run)(void *ctx);
    void *ctx;
    /* a back-up's hook (fastgd._optim.Backup.hook()) also puts its copy back: undo(ctx);
     * NULL for the other hooks */
    void (*undo)(void *ctx);
    /* a hook whose step depends on the step's index within the call (a per-step schedule,
     * fastgd._optim.ScheduleTable.hook()) sets run_at, which the loop calls instead of run
     * with k, the step's index from the start of train_steps (replayed steps included; with
     * gradient accumulation the index of the update, one per group of batches);
     * NULL for the other hooks */
    void (*run_at)(void *ctx, ptrdiff_t k);
} fgd_hook;

#define FGD_HOOK_NAME "fastgd.step_hook"

#endif
