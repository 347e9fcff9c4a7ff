/* Shared by the kernel sources: function multi-versioning and name pasting. */
#ifndef FASTGD_COMMON_H
#define FASTGD_COMMON_H

/* Hot loops are compiled for AVX-512, AVX2 and baseline x86-64; the loader picks one at run
 * time, so the binary stays portable (no -march=native). The build compiles with
 * -ffp-contract=off, so every clone rounds exactly like the numpy reference. */
#if defined(FASTGD_MULTIVERSION) && defined(__x86_64__) && defined(__linux__) && \
    defined(__has_attribute)
#if __has_attribute(target_clones)
#define FGD_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#define FGD_HAVE_CLONES 1
#endif
#endif
#ifndef FGD_HOT
#define FGD_HOT
#endif

#define FGD_CAT_(a, b) a##_##b
#define FGD_CAT(a, b) FGD_CAT_(a, b)

#endif
