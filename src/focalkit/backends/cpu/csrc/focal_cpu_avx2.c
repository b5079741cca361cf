/* AVX2 + FMA + F16C build of focal_cpu.c (setup.py adds -mavx2 -mfma -mf16c). */
#include "focal_cpu.c"
