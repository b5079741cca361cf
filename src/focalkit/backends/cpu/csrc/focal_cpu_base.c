/* Baseline build of focal_cpu.c (the ISA of the compiler's default target). */
#include "focal_cpu.c"
