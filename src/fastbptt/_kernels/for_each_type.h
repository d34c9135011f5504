/* Instantiates a template header for float and for double. The includer defines
 * FB_TEMPLATE as the template's file name in quotes, then includes this file (no include
 * guard: once per template). The template sees:
 *   FB_T           the element type
 *   FB_NAME(name)  name with the type's suffix: name_f32 or name_f64
 *   FB_SIGMOID, FB_TANH   vmath.h's scalar functions of that type (vmath.h is included)
 */
#include "vmath.h"

#define FB_T float
#define FB_NAME(name) name##_f32
#define FB_SIGMOID fb_sigmoidf1
#define FB_TANH fb_tanhf1
#include FB_TEMPLATE
#undef FB_T
#undef FB_NAME
#undef FB_SIGMOID
#undef FB_TANH

#define FB_T double
#define FB_NAME(name) name##_f64
#define FB_SIGMOID fb_sigmoid1
#define FB_TANH fb_tanh1
#include FB_TEMPLATE
#undef FB_T
#undef FB_NAME
#undef FB_SIGMOID
#undef FB_TANH
