/* Small out-of-place transposes for the per-step GEMMs that run in transposed form.
 *
 * Why: with B small against H, OpenBLAS runs the step product faster as R^T = W h^T, an
 * (H x B) result, than as R = h W^T (B x H) (measured at B = 32, H = 256: 43 us against
 * 61 us a call); the result goes back to the row layout of the element-wise passes
 * through one of these, twice per step pair. A plain double loop moves one element a
 * cycle; here full 8 x 8 tiles are fixed-size loops, which gcc unrolls and turns into
 * vector loads, shuffles and stores in the AVX-512 and AVX2 clones (see vmath.h for
 * FB_CLONES), and the edges fall back to the plain loop.
 *
 *   dst (cols x rows) = src (rows x cols)^T   (accumulate = 0)
 *   dst (cols x rows) += src (rows x cols)^T  (accumulate = 1)
 * row-major, rows ld_src and ld_dst elements apart.
 */
#ifndef FASTBPTT_TRANSPOSE_H
#define FASTBPTT_TRANSPOSE_H

#include <stddef.h>
#include "vmath.h"   /* FB_CLONES */

#define FB_TRANSPOSE(name, T)                                                            \
FB_CLONES static void name(const T *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld_src, \
                           T *dst, ptrdiff_t ld_dst, int accumulate)                     \
{                                                                                        \
    ptrdiff_t i0, j0, i, j;                                                              \
    ptrdiff_t rows8 = rows - rows % 8, cols8 = cols - cols % 8;                          \
    for (i0 = 0; i0 < rows8; i0 += 8) {                                                  \
        for (j0 = 0; j0 < cols8; j0 += 8) {                                              \
            const T *s = src + i0 * ld_src + j0;                                         \
            T *d = dst + j0 * ld_dst + i0;                                               \
            T tile[8][8];                                                                \
            for (i = 0; i < 8; i++)                                                      \
                for (j = 0; j < 8; j++) tile[j][i] = s[i * ld_src + j];                  \
            if (accumulate) {                                                            \
                for (j = 0; j < 8; j++)                                                  \
                    for (i = 0; i < 8; i++) d[j * ld_dst + i] += tile[j][i];             \
            } else {                                                                     \
                for (j = 0; j < 8; j++)                                                  \
                    for (i = 0; i < 8; i++) d[j * ld_dst + i] = tile[j][i];              \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    /* the edges: rows past rows8 (all columns), columns past cols8 (the first rows8) */ \
    for (i = 0; i < rows; i++) {                                                         \
        for (j = (i < rows8 ? cols8 : 0); j < cols; j++) {                               \
            if (accumulate) dst[j * ld_dst + i] += src[i * ld_src + j];                  \
            else dst[j * ld_dst + i] = src[i * ld_src + j];                              \
        }                                                                                \
    }                                                                                    \
}
FB_TRANSPOSE(fb_transpose_f32, float)
FB_TRANSPOSE(fb_transpose_f64, double)
#undef FB_TRANSPOSE

#endif
