/* AVX-512 build of focal_cpu.c (setup.py adds -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c
 * -mprefer-vector-width=512: the vectorised loops use 16-float registers). */
#include "focal_cpu.c"
