/* The GRU's fused element-wise passes: one row (one sequence, one step) of H elements each.
 *
 * Why in C: each pass calls sigmoid twice and tanh once an element, and only loops gcc
 * can vectorise make those cheap (vmath.h: branch-free scalar functions, inlined here,
 * cloned for AVX-512 and AVX2 through FB_CLONES). Each public function splits its rows
 * into the gate blocks and hands them to an inner loop whose pointers are all `restrict`
 * (they never overlap: distinct blocks of one row, or distinct arrays), so that gcc
 * vectorises without runtime alias checks. Constants are in the element type: a literal
 * 1.0 would promote float to double and halve the vector width.
 *
 * Row layouts (H elements a block, gate order r, z, n as PyTorch's):
 *   gates (4H): [P_r | P_z | P_n | .  ] on entry to the forward pass, the input projection
 *                                        x_t W_ih^T without its bias;
 *               [ r  |  z  |  n  | R_n] on exit: what backward needs, R_n with b_hn.
 *   R     (3H): h_{t-1} W_hh^T without bias, [R_r | R_z | R_n].
 *   bias  (4H): [b_ir + b_hr | b_iz + b_hz | b_in | b_hn].
 *   dA    (4H): [da_r | da_z | da_n r | da_n], so that its first 3H columns are
 *               dR = dL/d(h_{t-1} W_hh^T + b_hh) (the per-step GEMM's operand) and
 *               columns [0, 2H) + [3H, 4H) are dP = dL/d(x_t W_ih^T + b_ih).
 *
 * The functions are written once, in gru_cell_template.h, and instantiated here by
 * for_each_type.h:
 * fb_gru_forward_f32 / fb_gru_backward_f32 on float, then the _f64 pair on double.
 */
#ifndef FASTBPTT_GRU_CELL_H
#define FASTBPTT_GRU_CELL_H

#include <stddef.h>
#include "vmath.h"   /* fb_sigmoidf1, fb_tanhf1, fb_sigmoid1, fb_tanh1, FB_CLONES */

#define FB_TEMPLATE "gru_cell_template.h"
#include "for_each_type.h"   /* fb_gru_*_f32 and fb_gru_*_f64 */
#undef FB_TEMPLATE

#endif
