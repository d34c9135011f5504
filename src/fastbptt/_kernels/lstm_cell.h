/* The LSTM cell's fused element-wise passes, one batch row of H units per call.
 *
 * Why in C: each pass applies five sigmoids/tanhs per unit; written as one loop over
 * restrict pointers with vmath.h's branch-free scalar functions, gcc -O3 vectorises it
 * (the four gate blocks are four unit-stride streams), cloned for AVX-512 and AVX2
 * (FB_CLONES). Every constant has the element type: a double literal would promote the
 * float loop to double and halve its vector width.
 *
 * Gate blocks in PyTorch's order, a row of 4H: [i | f | g | o], block k at k*H.
 *
 * Forward, from the pre-activations z = x W_ih^T + h_{t-1} W_hh^T (4H) and the summed
 * bias b = b_ih + b_hh (4H):
 *   i = sigmoid(z_i + b_i), f = sigmoid(z_f + b_f), o = sigmoid(z_o + b_o),
 *   g = tanh(z_g + b_g)
 *   c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)                                        (H)
 * The activated gates overwrite z: they are what backward needs.
 *
 * Backward, with dh = dL/dh_t (from step t+1 plus, if given, from the loss at step t) and
 * dc = dL/dc_t from step t+1, tanh(c_t) recomputed rather than stored:
 *   dc   += dh o (1 - tanh(c_t)^2)                  (the total dL/dc_t)
 *   dz_i = dc g i (1 - i)        dz_f = dc c_{t-1} f (1 - f)
 *   dz_g = dc i (1 - g^2)        dz_o = dh tanh(c_t) o (1 - o)
 *   dc_{t-1} = dc f              (written over dc: the carry to step t-1)
 * and db += dz (4H): the bias gradient, summed while the row is in L1 (in a loop of its
 * own: with those four more streams in the main loop gcc gave up vectorising it).
 *
 * The functions are written once, in lstm_cell_template.h, and instantiated here by
 * for_each_type.h:
 * fb_lstm_forward_f32 / fb_lstm_backward_f32 on float, then the _f64 pair on double.
 */
#ifndef FASTBPTT_LSTM_CELL_H
#define FASTBPTT_LSTM_CELL_H

#include <stddef.h>
#include "vmath.h"   /* fb_sigmoidf1, fb_tanhf1, fb_sigmoid1, fb_tanh1, FB_CLONES */

#define FB_TEMPLATE "lstm_cell_template.h"
#include "for_each_type.h"   /* fb_lstm_*_f32 and fb_lstm_*_f64 */
#undef FB_TEMPLATE

#endif
