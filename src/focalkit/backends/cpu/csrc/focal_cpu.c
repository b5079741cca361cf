/*
 * focalkit fused CPU kernels: sigmoid and softmax focal loss, the Poly-1 focal loss (epsilon >= 0, on the sigmoid
 * loop) and the Poly-1 cross-entropy (on the softmax pass), the logistic family (quality focal, varifocal, Gaussian
 * focal, asymmetric, Poly-1 focal: one kernel with a loss code; the asymmetric loss with its own specialised loops)
 * and the distribution focal loss, each with its gradient in one pass.
 *
 * Plain C99 (plus GCC/Clang vector-friendly idioms), no dependency on Python or torch: the library is
 * loaded with ctypes and called on raw data pointers (see focalkit/backends/cpu/sigmoid.py, softmax.py,
 * logistic.py, poly_cross_entropy.py and distribution.py).
 *
 * Numerics (docs/CONTRACT.md, "Kernel contract"): all math in float32; exp and log are written out
 * here as branch-free polynomials (Cephes-style range reduction) so that the compiler vectorises them
 * with `#pragma omp simd` without -ffast-math, and so that inf/NaN handling is under our control:
 *   fk_exp(x):  x <= 88 (clamped); results below 2^-126 are flushed to 0 (never NaN);
 *   fk_exp_neg(x): the same for x <= 0 without the upper clamp (the hot loops' exp(x_k - max));
 *   fk_exp_bounded(x): x in [-88, 0] bounded by the caller, no clamp; fk_exp_neg_abs(a) = exp(-min(a, 88)) on it
 *   (the sigmoid loops' exp(-|x|)).
 *   fk_log1p01(e): log(1 + e) for e in [-1/2, 1] via 2 atanh(e / (2 + e)); full relative accuracy for tiny e.
 *   fk_log(a):  a > 0 normal.
 * Threads: every exported kernel runs its range [start, end) in pieces of `piece` elements on `threads` OpenMP
 * threads (FK_PIECES). Built with -fopenmp, the library names libgomp.so.1, which the dynamic loader resolves to the
 * copy torch has already loaded (same soname), so the kernels run on torch's own OpenMP thread pool, the threads
 * that are awake right after any parallel torch operation. Without OpenMP (or when loading the library mapped an
 * OpenMP runtime of its own) the Python wrapper calls each piece on its own thread pool instead, with threads = 1.
 * Sums are deterministic: per-element losses are summed per fixed block of FK_BLOCK elements (aligned to the global
 * flat index; a full 256-element chunk as a fixed tree of float vectors, see fk_sum_chunk, the chunk sums in double),
 * the caller sums the double block partials in order.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#define FK_CHUNK 256
#define FK_BLOCK 4096

/* The same source is built twice by setup.py: a baseline library and, on x86-64, one with
 * -mavx2 -mfma -mf16c; library.py loads the second only when the CPU reports AVX2, FMA and F16C. */

#if defined(_MSC_VER)
#define FK_EXPORT __declspec(dllexport)
#else
#define FK_EXPORT __attribute__((visibility("default")))
#endif

/* dtype codes shared with the Python wrapper */
enum { FK_F32 = 0, FK_F16 = 1, FK_BF16 = 2, FK_I64 = 3 };

static inline float fk_asfloat(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline int32_t fk_asint(float f) { int32_t i; memcpy(&i, &f, 4); return i; }

/* exp(x) for x in [-88, 88] (not NaN), the caller bounding x (fk_logistic passes -min(|x|, 88)): no clamp and no
 * selection at all, which in the sigmoid loops (several percent of their time) is worth a separate function. The
 * scale 2^n has n >= -127 there, and 2^-127 is written as +0 (biased exponent 0): results below about 2^-126.5 come
 * out exactly 0, those just under 2^-126 as subnormals. */
static inline __attribute__((always_inline)) float fk_exp_bounded(float x) {
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    /* exp(r) = 1 + r + r^2 P(r) on |r| <= log(2) / 2: P of degree 4, near-minimax (Lawson-weighted least squares
     * of the relative error of exp), 6.5e-8 relative at most with float coefficients (the degree-5 Taylor-like P it
     * replaced was no more accurate, and one multiply-add longer) */
    float p = 1.381461275741458e-3f;
    p = p * r + 8.368710055947304e-3f;
    p = p * r + 4.166838899254799e-2f;
    p = p * r + 1.666652113199234e-1f;
    p = p * r + 4.999999403953552e-1f;
    float y = p * (r * r) + r + 1.0f;
    int32_t ni = (int32_t)n;
    return y * fk_asfloat((int32_t)((uint32_t)(ni + 127) << 23));
}

/* exp(x) for x <= 0 (or NaN, which gives 0): fk_exp without its upper clamp, one instruction fewer in the hot loops
 * (exp(x_k - max)). */
static inline __attribute__((always_inline)) float fk_exp_neg(float x) {
    x = x < -88.0f ? -88.0f : x;
    float res = fk_exp_bounded(x);
    return x >= -88.0f ? res : 0.0f; /* false for NaN only */
}

/* exp(-a) for a = |x| >= 0 or NaN, as exp(-min(a, 88)) (a NaN gives exp(-88) = 0, as fk_exp_neg(NaN)): the sigmoid
 * loops' e = exp(-|x|), one clamp instead of fk_exp_neg's clamp after a negation. */
static inline __attribute__((always_inline)) float fk_exp_neg_abs(float a) {
    return fk_exp_bounded(-(a < 88.0f ? a : 88.0f));
}

/* exp(x) for x <= ~88; result flushed to 0 below 2^-126 (x < -87.33). */
static inline __attribute__((always_inline)) float fk_exp(float x) {
    x = x > 88.0f ? 88.0f : x;
    return fk_exp_neg(x);
}

/* log(1 + e) for e in [-1/2, 1]: 2 atanh(s) = 2 s + 2 s z P(z), s = e / (2 + e) in [-1/3, 1/3], z = s^2 <= 1/9.
 * P(z) = sum_k z^k / (2k + 3) is replaced by a degree-4 near-minimax polynomial on [0, 1/9] (Lawson-weighted least
 * squares): |error| 1e-8 with float coefficients, the rounding of 1/3 itself, so at most 1.1e-9 relative in log1p
 * (z P <= 0.04 of the result): as accurate as the 7 Taylor terms it replaces, with two multiply-adds fewer (about 5 %
 * of the sigmoid loops). */
static inline __attribute__((always_inline)) float fk_log1p01(float e) {
    float s = e / (2.0f + e);
    float s2 = s * s;
    float p = 0.11626891046762466f;
    p = p * s2 + 0.10850020498037338f;
    p = p * s2 + 0.14296405017375946f;
    p = p * s2 + 0.19999848306179047f;
    p = p * s2 + 0.3333333432674408f;
    return 2.0f * s + 2.0f * s * s2 * p;
}

/* log(a) for a > 0 normal. */
static inline __attribute__((always_inline)) float fk_log(float a) {
    int32_t ia = fk_asint(a) - 0x3f3504f3; /* offset so that the mantissa lands in [sqrt(.5), sqrt(2)) */
    int32_t k = ia >> 23;
    int32_t mb = (ia & 0x007fffff) + 0x3f3504f3;
    float f = fk_asfloat(mb) - 1.0f;
    float s = f / (2.0f + f);
    float s2 = s * s;
    float p = 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    float lf = 2.0f * s + 2.0f * s * s2 * p;
    float kf = (float)k;
    return kf * 0.693145751953125f + (lf + kf * 1.428606765330187e-06f);
}

static inline float fk_h2f(uint16_t h) {
#if defined(__FLT16_MAX__)
    _Float16 v; memcpy(&v, &h, 2); return (float)v;
#else
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fff;
    float mag;
    if (em >= 0x7c00) mag = fk_asfloat((int32_t)(0x7f800000 | ((em & 0x3ff) << 13)));
    else if (em >= 0x0400) mag = fk_asfloat((int32_t)((em + ((127 - 15) << 10)) << 13));
    else mag = (float)em * 5.9604644775390625e-08f;
    return fk_asfloat((int32_t)(fk_asint(mag) | sign));
#endif
}
static inline uint16_t fk_f2h(float f) {
#if defined(__FLT16_MAX__)
    _Float16 v = (_Float16)f; uint16_t h; memcpy(&h, &v, 2); return h;
#else
    /* round to nearest even, with overflow to inf and NaN kept */
    uint32_t x = (uint32_t)fk_asint(f), sign = (x >> 16) & 0x8000; x &= 0x7fffffff;
    if (x > 0x7f800000) return (uint16_t)(sign | 0x7e00);
    if (x >= 0x477ff000) return (uint16_t)(sign | 0x7c00);
    if (x < 0x38800000) { /* subnormal half */
        float v = fk_asfloat((int32_t)x) * 16777216.0f; /* scale by 2^24 */
        uint32_t m = (uint32_t)(v + 12582912.0f - 12582912.0f);
        return (uint16_t)(sign | m);
    }
    uint32_t r = x + 0xfff + ((x >> 13) & 1) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
#endif
}
static inline float fk_b2f(uint16_t b) { return fk_asfloat((int32_t)((uint32_t)b << 16)); }
static inline uint16_t fk_f2b(float f) {
    uint32_t x = (uint32_t)fk_asint(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* float16 <-> float32 8 values at a time with F16C (vcvtph2ps / vcvtps2ph): GCC compiles the element loops below, and
 * its vector types of _Float16, to one conversion instruction per value, which cost about as much as the sigmoid loss
 * itself. Same rounding (to nearest even) and the same NaN / infinity handling as the element conversions. */
#if defined(__F16C__)
#include <immintrin.h>
#define FK_F16_VECTOR 8
#else
#define FK_F16_VECTOR 0
#endif

static void fk_load(const void *src, int dt, int64_t off, int n, float *dst) {
    if (dt == FK_F32) { memcpy(dst, (const float *)src + off, (size_t)n * 4); return; }
    const uint16_t *h = (const uint16_t *)src + off;
    if (dt == FK_F16) {
        int i = 0;
#if FK_F16_VECTOR
        for (; i + FK_F16_VECTOR <= n; i += FK_F16_VECTOR)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
#endif
        for (; i < n; i++) dst[i] = fk_h2f(h[i]);
    } else {
        for (int i = 0; i < n; i++) dst[i] = fk_b2f(h[i]);
    }
}
static void fk_store(void *dst, int dt, int64_t off, int n, const float *src) {
    if (dt == FK_F32) { memcpy((float *)dst + off, src, (size_t)n * 4); return; }
    uint16_t *h = (uint16_t *)dst + off;
    if (dt == FK_F16) {
        int i = 0;
#if FK_F16_VECTOR
        for (; i + FK_F16_VECTOR <= n; i += FK_F16_VECTOR)
            _mm_storeu_si128((__m128i *)(h + i),
                             _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
        for (; i < n; i++) h[i] = fk_f2h(src[i]);
    } else {
        for (int i = 0; i < n; i++) h[i] = fk_f2b(src[i]);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* The logistic quantities of a logit, formed once (every sigmoid loop below uses them):               */
/*   e = exp(-|x|), l = log1p(e), p = sigmoid(x), pc = 1 - p (both without subtraction),              */
/*   spp = softplus(x) = -log(1 - p) = max(x, 0) + l,  spn = softplus(-x) = -log p = max(-x, 0) + l.   */
typedef struct {
    float ax, e, l, q, eq, p, pc, spp, spn;
    int nonneg; /* x >= 0 */
} fk_logit;

static inline __attribute__((always_inline)) fk_logit fk_logistic_e(float x, float e) {
    fk_logit s;
    s.ax = __builtin_fabsf(x);
    s.e = e;
    s.l = fk_log1p01(s.e);
    s.q = 1.0f / (1.0f + s.e);
    s.eq = s.e * s.q;
    s.nonneg = x >= 0.0f;
    s.p = s.nonneg ? s.q : s.eq;
    s.pc = s.nonneg ? s.eq : s.q;
    /* written so that a NaN logit stays NaN in both softplus terms */
    s.spp = (x < 0.0f ? 0.0f : x) + s.l;
    s.spn = (x > 0.0f ? 0.0f : -x) + s.l;
    return s;
}

/* The same from the logit alone. */
static inline __attribute__((always_inline)) fk_logit fk_logistic(float x) {
    return fk_logistic_e(x, fk_exp_neg_abs(x < 0.0f ? -x : x));
}

/* e = exp(-|x|) of n <= FK_CHUNK logits, in a loop of its own: a sigmoid loop then starts from e. Each element of
 * those loops is a long chain of dependent operations (exp, a division, log1p, ...); cut in two, more elements are
 * in flight at once (on an AVX-512 CPU both passes of the sigmoid focal loss ran faster so, although e goes through
 * memory; a third loop for log1p and the division made them slower again). */
static inline __attribute__((always_inline)) void fk_exp_neg_abs_chunk(int n, const float *restrict x,
                                                                       float *restrict e) {
#pragma omp simd
    for (int i = 0; i < n; i++) e[i] = fk_exp_neg_abs(__builtin_fabsf(x[i]));
}

/* The same loop over n logits and their float targets y, returning 1 when a target in the chunk is not exactly 0 or 1
 * (soft, or invalid: only such a chunk is then scanned for targets outside [0, 1]). The test is on the bits (integer
 * compares beside the exp's floating-point work: a loop of its own for it cost about 6 % of a sigmoid pass); -0.0
 * counts as soft, which only takes the general path. */
static inline __attribute__((always_inline)) int fk_exp_neg_abs_scan_chunk(int n, const float *restrict x,
                                                                            const float *restrict y,
                                                                            float *restrict e) {
    int soft = 0;
#pragma omp simd reduction(| : soft)
    for (int i = 0; i < n; i++) {
        e[i] = fk_exp_neg_abs(__builtin_fabsf(x[i]));
        int32_t b = fk_asint(y[i]);
        soft |= (b != 0) & (b != 0x3f800000);
    }
    return soft;
}

/* The focal quantities of a logit and a target y in [0, 1]: CE = max(x, 0) - x y + l, u = 1 - p_t = q A with
 * A = e y_c + y_comp (y_c the target on the predicted side, y_comp its complement), log u = log A - l (log A = -|x|
 * exactly when the target lies on the predicted side), r = p (1 - p) / u, and for the gradient dCE = p (1 - y) - (1 -
 * p) y = p - y and sgn = 1 - 2y. binary != 0: y is exactly 0 or 1: CE = l, or l + |x| when the target lies on the
 * other side, dCE = p or -(1 - p), sgn = +-1 (selections and one multiply-add, no log of A, no division). */
typedef struct {
    float ce, u, logu, r, dce, sgn;
} fk_focal_terms_t;

static inline __attribute__((always_inline)) fk_focal_terms_t fk_focal_terms(fk_logit s, float x, float y,
                                                                             const int binary) {
    fk_focal_terms_t f;
    if (binary) {
        int positive = y != 0.0f;
        int small = s.nonneg == positive; /* target on the predicted side: u = e q */
        f.ce = s.ax * (small ? 0.0f : 1.0f) + s.l; /* a product, not a selection: a NaN logit stays NaN */
        f.logu = small ? -s.ax - s.l : -s.l;
        f.r = small ? s.q : s.eq;
        f.u = small ? s.eq : s.q;
        f.dce = positive ? -s.pc : s.p;
        f.sgn = positive ? -1.0f : 1.0f;
    } else {
        float ym = 1.0f - y;
        float yc = s.nonneg ? y : ym;
        float ycomp = s.nonneg ? ym : y;
        int small = ycomp == 0.0f; /* target on the predicted side: u = e q */
        f.ce = (s.nonneg ? x * ym : -x * y) + s.l;
        f.dce = s.p * ym - s.pc * y;
        f.sgn = 1.0f - 2.0f * y;
        float A = s.e * yc + ycomp;
        float la0 = fk_log(small ? 1.0f : A);
        float la = small ? -s.ax : la0;
        f.logu = la - s.l;
        float rr = s.eq / (small ? 1.0f : A);
        f.r = small ? s.q : rr;
        f.u = s.q * A;
    }
    return f;
}

/* ------------------------------------------------------------------------------------------------ */
/* Sigmoid: math over one chunk of n <= FK_CHUNK elements held in float arrays.                      */
/* has_at: 0 (alpha_t = 1), 1 (at: alpha_t, 0 for ignored elements; the loss and gradient are finite, so 0 */
/*   times them is 0) or 2 (one alpha for every class: alpha_t = a1 y + a0 (1 - y), formed in the loop).  */
/* binary != 0: every y is exactly 0 or 1 (skips one log and one division).                           */
/* square != 0: gamma == 2, u^gamma = u * u (no exp).                                                 */
/* want_grad: 0 (the loss), 1 (the loss and the gradient) or 2 (the gradient alone; loss is not written).   */
/* reduced != 0: the reduced focal loss, factor exp(g (log u - lth)) = (u / th)^g where u <= bound      */
/*   (bound = 1 - th: p_t >= th) and 1 with an effective gamma of 0 (plain cross-entropy) elsewhere.     */
static inline __attribute__((always_inline)) void
fk_sigmoid_body(int n, const float *restrict x, const float *restrict eb, const float *restrict y,
                const float *restrict at, float a1, float a0,
                float g, float lth, float bound, const int want_grad, const int binary, const int has_at,
                const int square, const int reduced, float *restrict loss, float *restrict grad) {
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float xi = x[i], yi = y[i];
        fk_logit s = fk_logistic_e(xi, eb[i]);
        fk_focal_terms_t f = fk_focal_terms(s, xi, yi, binary);
        float ce = f.ce, u = f.u, logu = f.logu, r = f.r;
        float ug, ge; /* the modulating factor and the gamma of its derivative */
        if (reduced) {
            int focal = u <= bound; /* p_t >= th */
            float fg = fk_exp(g * (logu - lth));
            ug = focal ? fg : 1.0f;
            ge = focal ? g : 0.0f;
        } else {
            ug = square ? u * u : fk_exp(g * logu);
            ge = g;
        }
        float w = ug;
        if (has_at == 1) w = at[i] * ug;
        else if (has_at == 2) w = (binary ? (yi != 0.0f ? a1 : a0) : a1 * yi + a0 * (1.0f - yi)) * ug;
        if (want_grad != 2) loss[i] = w * ce;
        if (want_grad) grad[i] = w * (f.dce + ge * f.sgn * r * ce);
    }
}

/* The reduced focal loss' variants, out of line so that the plain loss' switch below is compiled as before. */
#define FK_SIG_RED_CASE(WG, BI, HA) \
    fk_sigmoid_body(n, x, eb, y, at, 0.0f, 0.0f, g, lth, bound, WG, BI, HA, 0, 1, loss, grad)
static __attribute__((noinline)) void
fk_sigmoid_chunk_reduced(int n, const float *restrict x, const float *restrict eb, const float *restrict y,
                         const float *restrict at, float g,
                         float lth, float bound, int want_grad, int binary, float *restrict loss, float *restrict grad) {
    int code = want_grad * 4 + (binary ? 2 : 0) + (at ? 1 : 0);
    switch (code) {
    case 0: FK_SIG_RED_CASE(0, 0, 0); break;
    case 1: FK_SIG_RED_CASE(0, 0, 1); break;
    case 2: FK_SIG_RED_CASE(0, 1, 0); break;
    case 3: FK_SIG_RED_CASE(0, 1, 1); break;
    case 4: FK_SIG_RED_CASE(1, 0, 0); break;
    case 5: FK_SIG_RED_CASE(1, 0, 1); break;
    case 6: FK_SIG_RED_CASE(1, 1, 0); break;
    case 7: FK_SIG_RED_CASE(1, 1, 1); break;
    case 8: FK_SIG_RED_CASE(2, 0, 0); break;
    case 9: FK_SIG_RED_CASE(2, 0, 1); break;
    case 10: FK_SIG_RED_CASE(2, 1, 0); break;
    default: FK_SIG_RED_CASE(2, 1, 1); break;
    }
}

/* The plain focal loss' variants: want_grad (0, 1 or 2, as for fk_sigmoid_body), binary, the alpha mode (none, per
 * element, one for every class) and gamma == 2, each loop compiled for its constants. */
#define FK_SIG_CASE(WG, BI, HA, SQ)                                                                              \
    case (((WG) * 2 + (BI)) * 3 + (HA)) * 2 + (SQ):                                                             \
        fk_sigmoid_body(n, x, eb, y, at, a1, a0, g, 0.0f, 0.0f, WG, BI, HA, SQ, 0, loss, grad);                 \
        break;
#define FK_SIG_CASES_HA(WG, BI, HA) FK_SIG_CASE(WG, BI, HA, 0) FK_SIG_CASE(WG, BI, HA, 1)
#define FK_SIG_CASES_BI(WG, BI) FK_SIG_CASES_HA(WG, BI, 0) FK_SIG_CASES_HA(WG, BI, 1) FK_SIG_CASES_HA(WG, BI, 2)
static void fk_sigmoid_chunk(int n, const float *restrict x, const float *restrict eb, const float *restrict y,
                             int alpha_mode,
                             const float *restrict at, float a1, float a0, float g, int want_grad, int binary,
                             float *restrict loss, float *restrict grad) {
    switch (((want_grad * 2 + (binary ? 1 : 0)) * 3 + alpha_mode) * 2 + (g == 2.0f ? 1 : 0)) {
        FK_SIG_CASES_BI(0, 0)
        FK_SIG_CASES_BI(0, 1)
        FK_SIG_CASES_BI(1, 0)
        FK_SIG_CASES_BI(1, 1)
        FK_SIG_CASES_BI(2, 0)
        FK_SIG_CASES_BI(2, 1)
    default: break;
    }
}

/* Poly-1 focal loss for eps >= 0 over one chunk, with the sigmoid body's specialisations (binary, has_at, square)
 * and its u, log u and r = p (1 - p) / u; a sum of non-negative terms:
 *   L = u^g (a_t CE + eps u),  dL/dx = a_t u^g (dCE + g (1 - 2y) r CE) + eps (g + 1) u^g (1 - 2y) p (1 - p),
 * using r u = p (1 - p) = q e q. The poly term is not alpha-weighted. */
static inline __attribute__((always_inline)) void
fk_poly1_body(int n, const float *restrict x, const float *restrict eb, const float *restrict y,
              const float *restrict at, float g, float eps,
              const int want_grad, const int binary, const int has_at, const int square, float *restrict loss,
              float *restrict grad) {
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float xi = x[i], yi = y[i];
        fk_logit s = fk_logistic_e(xi, eb[i]);
        fk_focal_terms_t f = fk_focal_terms(s, xi, yi, binary);
        float ce = f.ce, u = f.u, logu = f.logu, r = f.r;
        float ug = square ? u * u : fk_exp(g * logu);
        float w = has_at ? at[i] * ug : ug;
        float pu = eps * ug; /* the poly term's weight eps u^g */
        loss[i] = w * ce + pu * u;
        if (want_grad) grad[i] = w * (f.dce + g * f.sgn * r * ce) + pu * (g + 1.0f) * f.sgn * (s.q * s.eq);
    }
}

/* Its variants: one out-of-line function each (inlined into one switch, GCC leaves most of the loops scalar). */
typedef void (*fk_poly1_fn)(int n, const float *restrict x, const float *restrict eb, const float *restrict y,
                            const float *restrict at, float g, float eps, float *restrict loss, float *restrict grad);
#define FK_POLY1_DEFINE(WG, BI, HA, SQ)                                                                            \
    static __attribute__((noinline)) void fk_poly1_##WG##BI##HA##SQ(                                              \
        int n, const float *restrict x, const float *restrict eb, const float *restrict y, const float *restrict at, \
        float g, float eps, float *restrict loss, float *restrict grad) {                                          \
        fk_poly1_body(n, x, eb, y, at, g, eps, WG, BI, HA, SQ, loss, grad);                                      \
    }
#define FK_POLY1_DEFINE_WG(WG)                                                                                     \
    FK_POLY1_DEFINE(WG, 0, 0, 0) FK_POLY1_DEFINE(WG, 0, 0, 1) FK_POLY1_DEFINE(WG, 0, 1, 0)                       \
    FK_POLY1_DEFINE(WG, 0, 1, 1) FK_POLY1_DEFINE(WG, 1, 0, 0) FK_POLY1_DEFINE(WG, 1, 0, 1)                       \
    FK_POLY1_DEFINE(WG, 1, 1, 0) FK_POLY1_DEFINE(WG, 1, 1, 1)
FK_POLY1_DEFINE_WG(0)
FK_POLY1_DEFINE_WG(1)
#define FK_POLY1_ROW(WG)                                                                                           \
    fk_poly1_##WG##000, fk_poly1_##WG##001, fk_poly1_##WG##010, fk_poly1_##WG##011, fk_poly1_##WG##100,           \
        fk_poly1_##WG##101, fk_poly1_##WG##110, fk_poly1_##WG##111
static const fk_poly1_fn fk_poly1_variants[2][8] = {{FK_POLY1_ROW(0)}, {FK_POLY1_ROW(1)}};

static void fk_poly1_chunk(int n, const float *restrict x, const float *restrict eb, const float *restrict y,
                           const float *restrict at, float g, float eps, int want_grad, int binary, float *restrict loss,
                           float *restrict grad) {
    int variant = (binary ? 4 : 0) | (at ? 2 : 0) | (g == 2.0f ? 1 : 0);
    fk_poly1_variants[want_grad ? 1 : 0][variant](n, x, eb, y, at, g, eps, loss, grad);
}

/* The sum of a chunk's n losses in double. A full chunk (FK_CHUNK = 256, the common case) is added as a fixed tree:
 * 16 float vectors of 16 lanes halved four times (at most 4 roundings of 2^-24 relative for non-negative terms),
 * the 16 lanes then in double, pairwise. The loop of 256 double conversions and additions it replaces was a chain of
 * dependent additions at the end of every chunk, about 8 % of the sigmoid pass. GCC / Clang vector types: every
 * build (baseline, AVX2, AVX-512) adds in the same order. */
typedef float fk_v16f __attribute__((vector_size(64)));
typedef float fk_v8f __attribute__((vector_size(32)));
typedef double fk_v8d __attribute__((vector_size(64)));
static double fk_sum_chunk(int n, const float *v) {
    if (n == FK_CHUNK) {
        fk_v16f a[FK_CHUNK / 16];
        memcpy(a, v, sizeof a);
        for (int w = FK_CHUNK / 32; w > 0; w >>= 1)
            for (int j = 0; j < w; j++) a[j] += a[j + w];
        fk_v8f lo, hi;
        memcpy(&lo, &a[0], sizeof lo);
        memcpy(&hi, (const char *)&a[0] + sizeof lo, sizeof hi);
        fk_v8d d = __builtin_convertvector(lo, fk_v8d) + __builtin_convertvector(hi, fk_v8d);
        return ((d[0] + d[4]) + (d[2] + d[6])) + ((d[1] + d[5]) + (d[3] + d[7]));
    }
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += (double)v[i];
    return acc;
}

#ifndef FK_ABI_VERSION
#error "FK_ABI_VERSION must be defined by the build (setup.py reads it from focalkit/backends/cpu/abi.py)"
#endif
FK_EXPORT int fk_abi_version(void) { return FK_ABI_VERSION; }

/* v[0] + v[1] + ... + v[n - 1] in this order: the total of a call's float64 block partials (library.BlockSums), the
 * same additions whatever the thread count or the split that filled them. */
FK_EXPORT double fk_sum_doubles(const double *v, int64_t n) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += v[i];
    return acc;
}

/* 1 when the library was built with OpenMP (its kernels then run their pieces on OpenMP threads). */
FK_EXPORT int fk_openmp(void) {
#if defined(_OPENMP)
    return 1;
#else
    return 0;
#endif
}

#if defined(_OPENMP)
#define FK_THREAD_ID ((int64_t)omp_get_thread_num())
#else
#define FK_THREAD_ID ((int64_t)0)
#endif

/* The body of an exported kernel: returns the sum of CALL, an int64_t expression of the piece bounds `s`, `e` and
 * the thread index `tid`, over [START, END) cut into pieces of PIECE elements (PIECE <= 0: one piece), which THREADS
 * OpenMP threads take in turn (schedule(dynamic, 1): a thread slowed by another process does not hold the others
 * up). A piece is a whole number of FK_BLOCK blocks (the caller chooses PIECE), so per-block sums do not depend on
 * the split. One call on the calling thread when THREADS <= 1, for a single piece, or without OpenMP. */
#define FK_PIECES(START, END, THREADS, PIECE, CALL)                                                                \
    do {                                                                                                           \
        const int64_t fk_s0 = (START), fk_e0 = (END), fk_len = fk_e0 - fk_s0;                                      \
        const int64_t fk_piece = (PIECE) > 0 && (PIECE) < fk_len ? (PIECE) : fk_len;                               \
        const int64_t fk_pieces = fk_len > 0 ? (fk_len + fk_piece - 1) / fk_piece : 0;                             \
        const int fk_threads = (THREADS);                                                                          \
        int64_t fk_sum = 0;                                                                                        \
        if (fk_threads > 1 && fk_pieces > 1) {                                                                     \
            _Pragma("omp parallel for num_threads(fk_threads) schedule(dynamic, 1) reduction(+ : fk_sum)")         \
            for (int64_t fk_p = 0; fk_p < fk_pieces; fk_p++) {                                                     \
                const int64_t s = fk_s0 + fk_p * fk_piece;                                                         \
                const int64_t e = (fk_e0 - s) < fk_piece ? fk_e0 : s + fk_piece;                                   \
                const int64_t tid = FK_THREAD_ID;                                                                  \
                (void)tid;                                                                                         \
                fk_sum += (CALL);                                                                                  \
            }                                                                                                      \
        } else if (fk_len > 0) {                                                                                   \
            const int64_t s = fk_s0, e = fk_e0, tid = 0;                                                           \
            (void)tid;                                                                                             \
            fk_sum = (CALL);                                                                                       \
        }                                                                                                          \
        return fk_sum;                                                                                             \
    } while (0)

/* The reduced focal loss' scalars for threshold th in (0, 1]: lth = log th and bound = 1 - th (the factor applies
 * where 1 - p_t <= bound); th = 0 (the option off) gives lth = 0, bound = +inf (always the plain factor). */
typedef struct {
    float lth, bound;
    int on;
} fk_reduced;

static fk_reduced fk_reduced_scalars(double th) {
    fk_reduced r = {0.0f, INFINITY, 0};
    if (th > 0.0) {
        r.lth = (float)log(th);
        r.bound = (float)(1.0 - th);
        r.on = 1;
    }
    return r;
}

/* alpha_t = ap[c] y + an[c] (1 - y) for flat elements [i0, i0 + n) of (N, C, S) logits. */
static void fk_alpha_t(int64_t i0, int n, int64_t C, int64_t S, const float *ap, const float *an,
                       const float *restrict y, float *restrict at) {
    int64_t c = (i0 / S) % C, s = i0 % S;
    int i = 0;
    while (i < n) {
        int len;
        if (S == 1) {
            len = (int)((C - c) < (n - i) ? (C - c) : (n - i));
            const float *apr = ap + c, *anr = an + c, *yr = y + i;
            float *atr = at + i;
#pragma omp simd
            for (int j = 0; j < len; j++) atr[j] = apr[j] * yr[j] + anr[j] * (1.0f - yr[j]);
            c += len;
            if (c == C) c = 0;
        } else {
            len = (int)((S - s) < (n - i) ? (S - s) : (n - i));
            const float apc = ap[c], anc = an[c], *yr = y + i;
            float *atr = at + i;
#pragma omp simd
            for (int j = 0; j < len; j++) atr[j] = apc * yr[j] + anc * (1.0f - yr[j]);
            s += len;
            if (s == S) { s = 0; if (++c == C) c = 0; }
        }
        i += len;
    }
}

/*
 * Sigmoid focal loss over flat elements [start, end) of logits viewed as (N, C, S) contiguous.
 * tdt: FK_F32/FK_F16/FK_BF16 (soft targets of the logits' shape) or FK_I64 (class indices, shape (N, S)).
 * ap, an: per-class alpha (C,) or NULL (weight 1). loss_out: per-element float32 or NULL.
 * grad_out: gradient in dtype xdt or NULL. block_sums: when not NULL, block_sums[b] += sum of losses of
 * global block b = flat_index / FK_BLOCK (start must then be a multiple of FK_BLOCK). With grad_out but neither
 * loss_out nor block_sums (a backward pass that recomputes the gradient), the losses are not formed at all.
 * reduced_threshold: th in (0, 1] for the reduced focal loss, 0 for the focal loss (fk_sigmoid_focal; the driver takes
 * its scalars, and poly / eps for fk_poly1_focal).
 */
static inline __attribute__((always_inline)) int64_t
fk_sigmoid_driver(const void *xp, int xdt, const void *tp, int tdt, const float *ap, const float *an, float gamma,
                  const fk_reduced red, int poly, float eps, int64_t ignore_index, int has_ignore, int64_t C, int64_t S,
                  int64_t start, int64_t end, float *loss_out, void *grad_out, double *block_sums) {
    float xbuf[FK_CHUNK], ybuf[FK_CHUNK], eb[FK_CHUNK], at[FK_CHUNK], lbuf[FK_CHUNK], gbuf[FK_CHUNK];
    const int want_grad = grad_out != NULL;
    const int grad_mode = !want_grad ? 0 : (loss_out || block_sums) ? 1 : 2; /* fk_sigmoid_body's want_grad */
    const int64_t CS = C * S;
    const int has_at = ap != NULL || (tdt == FK_I64 && has_ignore);
    /* float targets and one alpha for every class (a scalar alpha; the plain focal loss): alpha_t is formed inside
     * the loss loop from the two numbers, with no alpha_t array to write and read back */
    int uniform = ap != NULL && tdt != FK_I64 && !poly && !red.on;
    for (int64_t c = 1; uniform && c < C; c++) uniform = ap[c] == ap[0] && an[c] == an[0];
    /* (N, C) logits with C <= FK_CHUNK and soft targets: the per-class alphas tiled along a chunk, so that alpha_t is
     * one contiguous vector loop (the class of flat element i is i mod C) instead of C-element segments */
    float apt[2 * FK_CHUNK], ant[2 * FK_CHUNK];
    const int tiled = ap != NULL && !uniform && tdt != FK_I64 && S == 1 && C <= FK_CHUNK;
    if (tiled) {
        for (int64_t j = 0, c = 0; j < FK_CHUNK + C; j++) { /* no division per entry: a microsecond per call */
            apt[j] = ap[c];
            ant[j] = an[c];
            if (++c == C) c = 0;
        }
    }
    int64_t bad = 0; /* targets outside [0, 1] / NaN, or class indices outside [0, C] that are not ignore_index */
    for (int64_t i0 = start; i0 < end; i0 += FK_CHUNK) {
        int n = (int)((end - i0) < FK_CHUNK ? (end - i0) : FK_CHUNK);
        const float *x = xbuf, *y = ybuf;
        float *loss = loss_out ? loss_out + i0 : lbuf;
        float *grad = (want_grad && xdt == FK_F32) ? (float *)grad_out + i0 : gbuf;
        if (xdt == FK_F32) x = (const float *)xp + i0;
        else fk_load(xp, xdt, i0, n, xbuf);
        int binary = 1;
        if (tdt == FK_I64) {
            const int64_t *t = (const int64_t *)tp;
            int64_t nn = i0 / CS, rem = i0 - nn * CS, c = rem / S, s = rem - c * S;
            int i = 0;
            while (i < n) {
                /* a segment: the rest of one row, class varying (S == 1) or spatial varying (S > 1) */
                int len;
                if (S == 1) {
                    int64_t ti = t[nn];
                    len = (int)((C - c) < (n - i) ? (C - c) : (n - i));
                    int ign = has_ignore && ti == ignore_index;
                    if (c == 0 && !ign && (ti < 0 || ti > C)) bad++;
                    for (int j = 0; j < len; j++) ybuf[i + j] = (c + j == ti) ? 1.0f : 0.0f;
                    if (ap) {
                        for (int j = 0; j < len; j++) at[i + j] = ybuf[i + j] != 0.0f ? ap[c + j] : an[c + j];
                    } else if (has_at) {
                        for (int j = 0; j < len; j++) at[i + j] = 1.0f;
                    }
                    if (ign) for (int j = 0; j < len; j++) at[i + j] = 0.0f;
                    c += len;
                    if (c == C) { c = 0; nn++; }
                } else {
                    const int64_t *tr = t + nn * S + s;
                    len = (int)((S - s) < (n - i) ? (S - s) : (n - i));
                    for (int j = 0; j < len; j++) ybuf[i + j] = (tr[j] == c) ? 1.0f : 0.0f;
                    if (c == 0) {
                        for (int j = 0; j < len; j++)
                            bad += (tr[j] < 0 || tr[j] > C) && !(has_ignore && tr[j] == ignore_index);
                    }
                    float apc = ap ? ap[c] : 1.0f, anc = ap ? an[c] : 1.0f;
                    if (has_at) {
                        for (int j = 0; j < len; j++) {
                            float a = ybuf[i + j] != 0.0f ? apc : anc;
                            at[i + j] = (has_ignore && tr[j] == ignore_index) ? 0.0f : a;
                        }
                    }
                    s += len;
                    if (s == S) { s = 0; if (++c == C) { c = 0; nn++; } }
                }
                i += len;
            }
            fk_exp_neg_abs_chunk(n, x, eb);
        } else {
            if (tdt == FK_F32) y = (const float *)tp + i0;
            else fk_load(tp, tdt, i0, n, ybuf);
            /* soft: a target other than exactly 0 or 1 in this chunk (one OR-reduction, in the alpha loop when there
             * is one, else in the exp loop); only such a chunk can hold an invalid target, so only then are they
             * counted */
            int soft = 0;
            if (tiled) {
                const float *apc = apt + i0 % C, *anc = ant + i0 % C;
#pragma omp simd reduction(| : soft)
                for (int i = 0; i < n; i++) {
                    at[i] = apc[i] * y[i] + anc[i] * (1.0f - y[i]);
                    soft |= (y[i] != 0.0f) & (y[i] != 1.0f);
                }
                fk_exp_neg_abs_chunk(n, x, eb);
            } else {
                soft = fk_exp_neg_abs_scan_chunk(n, x, y, eb);
                if (ap && !uniform) fk_alpha_t(i0, n, C, S, ap, an, y, at);
            }
            binary = !soft;
            if (soft) {
                int nbad = 0;
#pragma omp simd reduction(+ : nbad)
                for (int i = 0; i < n; i++) nbad += !((y[i] >= 0.0f) & (y[i] <= 1.0f)); /* NaN counts as bad */
                bad += nbad;
            }
        }
        if (poly)
            fk_poly1_chunk(n, x, eb, y, has_at ? at : NULL, gamma, eps, want_grad, binary, loss, grad);
        else if (red.on)
            fk_sigmoid_chunk_reduced(n, x, eb, y, has_at ? at : NULL, gamma, red.lth, red.bound, grad_mode, binary,
                                     loss, grad);
        else
            fk_sigmoid_chunk(n, x, eb, y, uniform ? 2 : has_at ? 1 : 0, at, uniform ? ap[0] : 0.0f, uniform ? an[0] : 0.0f,
                             gamma, grad_mode, binary, loss, grad);
        if (want_grad && xdt != FK_F32) fk_store(grad_out, xdt, i0, n, gbuf);
        if (block_sums) block_sums[i0 / FK_BLOCK] += fk_sum_chunk(n, loss);
    }
    return bad;
}

FK_EXPORT int64_t fk_sigmoid_focal(const void *xp, int xdt, const void *tp, int tdt, const float *ap, const float *an,
                                   float gamma, double reduced_threshold, int64_t ignore_index, int has_ignore,
                                   int64_t N, int64_t C, int64_t S, int64_t start, int64_t end, float *loss_out,
                                   void *grad_out, double *block_sums, int threads, int64_t piece) {
    (void)N;
    const fk_reduced red = fk_reduced_scalars(reduced_threshold);
    FK_PIECES(start, end, threads, piece,
              fk_sigmoid_driver(xp, xdt, tp, tdt, ap, an, gamma, red, 0, 0.0f, ignore_index, has_ignore, C, S, s, e,
                                loss_out, grad_out, block_sums));
}

/*
 * Poly-1 focal loss for epsilon >= 0 (the sigmoid focal loss plus eps (1 - p_t)^(gamma + 1), see fk_poly1_body)
 * over flat elements [start, end) of float targets of the logits' shape (tdt FK_F32/FK_F16/FK_BF16). The other
 * arguments and the return value are those of fk_sigmoid_focal. epsilon < 0 takes the logistic family's
 * FK_POLY1 path, which keeps a_t s + eps (1 - e^{-s}) free of cancellation.
 */
FK_EXPORT int64_t fk_poly1_focal(const void *xp, int xdt, const void *tp, int tdt, const float *ap, const float *an,
                                 float gamma, float epsilon, int64_t N, int64_t C, int64_t S, int64_t start,
                                 int64_t end, float *loss_out, void *grad_out, double *block_sums, int threads,
                                 int64_t piece) {
    (void)N;
    const fk_reduced red = fk_reduced_scalars(0.0);
    FK_PIECES(start, end, threads, piece,
              fk_sigmoid_driver(xp, xdt, tp, tdt, ap, an, gamma, red, 1, epsilon, 0, 0, C, S, s, e, loss_out,
                                grad_out, block_sums));
}

/* The Taylor series of g(s) = s - (1 - e^{-s}) = s^2 sum_{k>=2} (-1)^k s^(k - 2) / k!, by Horner from the coefficient
 * of s^11 (acc11: -1/11!, or the longer series' higher terms folded into it) down to 1/2!. */
static inline __attribute__((always_inline)) float fk_excess_series(float t, float acc11) {
    float acc = acc11;
    acc = acc * t + 2.755731922398589e-07f;
    acc = acc * t - 2.7557319223985893e-06f;
    acc = acc * t + 2.48015873015873e-05f;
    acc = acc * t - 0.0001984126984126984f;
    acc = acc * t + 0.001388888888888889f;
    acc = acc * t - 0.008333333333333333f;
    acc = acc * t + 0.041666666666666664f;
    acc = acc * t - 0.16666666666666666f;
    acc = acc * t + 0.5f;
    return t * t * acc;
}

/* g(s) = s - (1 - e^{-s}) >= 0, given om = 1 - e^{-s} (= 1 - p for s = spn, p for s = spp): a Taylor series
 * below s = 0.1, else the difference (poly.py `excess`). */
static inline __attribute__((always_inline)) float fk_excess(float s, float om) {
    int small = s < 0.1f;
    float t = small ? s : 0.0f;
    return small ? fk_excess_series(t, -2.505210838544172e-08f /* (-1)^11 / 11! */) : s - om;
}

/* c ? a : b for a loop-uniform condition c, as a bit select: GCC 12 does not vectorise a float select whose condition
 * is a scalar (uniform) boolean. */
static inline __attribute__((always_inline)) float fk_pick(int c, float a, float b) {
    int32_t m = -(int32_t)(c != 0);
    return fk_asfloat((fk_asint(a) & m) | (fk_asint(b) & ~m));
}

/* ------------------------------------------------------------------------------------------------ */
/* Softmax over the class dim of logits viewed as (N, C, S) contiguous, class-index targets (N, S).   */
/* For each (n, s) column: m = max_k x_k, ex_k = exp(x_k - m), S = sum ex, S' = sum_{k != t} ex,        */
/* u = S'/S, l = x_t - m - log S, p_t = ex_t / S, w = alpha[t] weight[t] u^g,                              */
/* loss = -w l, A = w (u - g p_t l), grad_t = -A, grad_j = A ex_j / S'.                                  */
/* Reduced focal loss (lth = log th, bound = 1 - th; see fk_reduced_scalars): u^g becomes exp(g (log u - lth)) */
/* where u <= bound, else 1 with g = 0 in A. With the option off, bound = +inf and lth = 0: the same numbers. */
/* The test is !(u > bound) so that a NaN u takes the focal branch, as without the option.                 */
/* Poly-1 cross-entropy (eps != 0, g = 0): loss = w (-l + eps u), A = w u (1 + eps p_t) (fk_poly1_ce).      */

/* g(s) = s - (1 - e^{-s}) >= 0 given om = 1 - e^{-s}, to full relative accuracy: the Taylor series
 * s^2 sum_{k=2..13} (-1)^k s^(k - 2) / k! below s = 1 (truncation below 2e-10 relative), s - om above (>= 0.37, no
 * cancellation). A per-row quantity (softmax kernels), so the longer series costs nothing measurable. */
static inline __attribute__((always_inline)) float fk_excess_accurate(float s, float om) {
    int small = s < 1.0f;
    float t = small ? s : 0.0f;
    float acc11 = (-1.6059043836821613e-10f /* (-1)^13 / 13! */ * t + 2.08767569878681e-09f) * t - 2.505210838544172e-08f;
    return small ? fk_excess_series(t, acc11) : s - om;
}

/* The Poly-1 cross-entropy of one row from ce = -log p_t >= 0 and u = 1 - p_t: ce + eps u, written for eps < 0 as
 * (1 + eps) ce + (-eps) g(ce) with g(s) = s - (1 - e^{-s}) >= 0 (fk_excess_accurate), a sum of non-negative terms
 * that keeps its relative accuracy where ce and -eps u nearly cancel (p_t -> 1, eps -> -1). eps is loop-uniform. */
static inline __attribute__((always_inline)) float fk_poly1_ce(float ce, float u, float eps) {
    return fk_pick(eps < 0.0f, (1.0f + eps) * ce - eps * fk_excess_accurate(ce, u), ce + eps * u);
}

/* The per-column part of fk_softmax_cols: log p_t, u, the loss, A / S' and -A. poly != 0: the Poly-1 cross-entropy
 * (g = 0, no reduced threshold), loss w (-l + eps u), A = w u (1 + eps p_t) = w u ((1 + eps) - eps u). */
static inline __attribute__((always_inline)) void
fk_softmax_cols_tail(int nc, const float *restrict m, const float *restrict ssum, const float *restrict sp,
                     const float *restrict xt, const float *restrict wr, float g, float lth, float bound, float eps,
                     const int poly, float *restrict loss, float *restrict coef_out, float *restrict gt_out) {
#pragma omp simd
    for (int i = 0; i < nc; i++) {
        float lS = fk_log(ssum[i]); /* S >= 1 */
        float ext = fk_exp_neg(xt[i] - m[i]);
        /* log p_t: -log1p(S'/e_t) when p_t >= 1/2 (no cancellation), else x_t - m - log S */
        int big = sp[i] <= ext;
        float l = big ? -fk_log1p01(big ? sp[i] / ext : 0.0f) : xt[i] - m[i] - lS;
        int zero = sp[i] <= 0.0f;
        float lsp = fk_log(zero ? 1.0f : sp[i]);
        float logu = lsp - lS;
        float u = sp[i] / ssum[i];
        int focal = !(u > bound);
        float fg = zero ? (g == 0.0f ? 1.0f : 0.0f) : fk_exp(g * (logu - lth));
        float ug = focal ? fg : 1.0f;
        float ge = focal ? g : 0.0f;
        float pt = fk_exp_neg(l);
        float w = wr[i] * ug;
        float li = poly ? w * fk_poly1_ce(-l, u, eps) : -w * l;
        loss[i] = wr[i] != 0.0f ? li : 0.0f;
        float A = poly ? w * u * ((1.0f + eps) - eps * u) : w * (u - ge * pt * l);
        A = wr[i] != 0.0f ? A : 0.0f;
        coef_out[i] = zero ? 0.0f : A / (zero ? 1.0f : sp[i]);
        gt_out[i] = -A;
    }
}

/* store != 0: the exponentials of class k are kept at eb + k * estride (for the gradient). */
static inline __attribute__((always_inline)) void
fk_softmax_cols(int nc, int64_t C, const float *restrict xb /* C x nc, row stride nc */, const int64_t *restrict t,
                const float *restrict wt /* C or NULL */, float g, float lth, float bound, float eps,
                int64_t ignore_index, int has_ignore, const int store, float *restrict eb, int64_t estride,
                float *restrict loss, float *restrict coef_out, float *restrict gt_out) {
    float m[FK_CHUNK], ssum[FK_CHUNK], sp[FK_CHUNK], xt[FK_CHUNK], wr[FK_CHUNK];
    int64_t tc[FK_CHUNK];
    for (int i = 0; i < nc; i++) {
        int64_t ti = t[i];
        int valid = ti >= 0 && ti < C && !(has_ignore && ti == ignore_index);
        tc[i] = valid ? ti : -1;
        wr[i] = valid ? (wt ? wt[ti] : 1.0f) : 0.0f;
        xt[i] = valid ? xb[ti * nc + i] : 0.0f;
        m[i] = xb[i];
        ssum[i] = 0.0f;
        sp[i] = 0.0f;
    }
    for (int64_t k = 1; k < C; k++) {
        const float *xr = xb + k * nc;
#pragma omp simd
        for (int i = 0; i < nc; i++) m[i] = xr[i] > m[i] ? xr[i] : m[i];
    }
    for (int64_t k = 0; k < C; k++) {
        const float *xr = xb + k * nc;
        float *er = store ? eb + k * estride : NULL;
#pragma omp simd
        for (int i = 0; i < nc; i++) {
            float ev = fk_exp_neg(xr[i] - m[i]);
            if (store) er[i] = ev;
            ssum[i] += ev;
            sp[i] += (tc[i] == k) ? 0.0f : ev;
        }
    }
    if (eps != 0.0f)
        fk_softmax_cols_tail(nc, m, ssum, sp, xt, wr, g, lth, bound, eps, 1, loss, coef_out, gt_out);
    else
        fk_softmax_cols_tail(nc, m, ssum, sp, xt, wr, g, lth, bound, 0.0f, 0, loss, coef_out, gt_out);
}

/* Rows per batch of the S == 1 path ((N, C) logits): as many whole rows as fill FK_ROW_BATCH_FLOATS floats, at least
 * one, at most FK_CHUNK (the Python wrapper sizes the scratch with the same rule, library.ROW_BATCH_FLOATS). */
#define FK_ROW_BATCH_FLOATS 8192
static inline int64_t fk_row_batch(int64_t C) {
    int64_t r = FK_ROW_BATCH_FLOATS / C;
    return r < 1 ? 1 : (r > FK_CHUNK ? FK_CHUNK : r);
}

/* One row of an S == 1 batch: its maximum m, its exponentials er[k] = exp(x_k - m) (kept when store != 0, for the
 * gradient), their sum and the sum without the target class (sp = S'), all vectorised along the row; the per-row
 * tail then runs vectorised across the batch. */
static inline __attribute__((always_inline)) void
fk_softmax_row_sums(int64_t C, const float *restrict xr, int64_t ti, const int store, float *restrict er,
                    float *m_out, float *ssum_out, float *sp_out) {
    float m = xr[0];
#pragma omp simd reduction(max : m)
    for (int64_t k = 0; k < C; k++) m = xr[k] > m ? xr[k] : m;
    float ssum = 0.0f, sp = 0.0f;
#pragma omp simd reduction(+ : ssum, sp)
    for (int64_t k = 0; k < C; k++) {
        float ev = fk_exp_neg(xr[k] - m);
        if (store) er[k] = ev;
        ssum += ev;
        sp += (k == ti) ? 0.0f : ev;
    }
    *m_out = m;
    *ssum_out = ssum;
    *sp_out = sp;
}

/* A per-row loss added to its sum block (block_sums[r / FK_BLOCK]) through the running partial *acc, written once
 * per block (after its last row, or the range's): threads run neighbouring blocks, whose entries share a cache line,
 * so a write per row bounces that line between them (measured: the soft-target kernel gained nothing from a second
 * thread that way). The same additions in the same order as adding each row to the zeroed entry. */
static inline void fk_row_sum(double *block_sums, int64_t r, int64_t end, double v, double *acc) {
    *acc += v;
    if ((r + 1) % FK_BLOCK == 0 || r + 1 == end) {
        block_sums[r / FK_BLOCK] += *acc;
        *acc = 0.0;
    }
}

/*
 * Softmax focal loss over columns [start, end) of the (N * S) flat columns. wt: combined per-class weight
 * alpha[c] * weight[c] (C,) or NULL. loss_out: per-column float32 (N, S) or NULL. grad_out: logits-shaped
 * in dtype xdt or NULL. block_sums: block_sums[b] += column losses of global column block b = col / FK_BLOCK.
 * scratch: 2 * C * fk_row_batch(C) floats (S == 1) or 2 * C * FK_CHUNK floats (S > 1) owned by the caller (one per
 * thread).
 * reduced_threshold: th in (0, 1] for the reduced focal loss, 0 for the focal loss.
 */
static int64_t fk_softmax_driver(const void *xp, int xdt, const int64_t *tp, const float *wt, float gamma,
                                 const fk_reduced red, float eps, int64_t ignore_index, int has_ignore, int64_t C,
                                 int64_t S, int64_t start, int64_t end, float *loss_out, void *grad_out,
                                 double *block_sums, float *scratch) {
    float loss[FK_CHUNK], coef[FK_CHUNK], gt[FK_CHUNK];
    int64_t tloc[FK_CHUNK];
    /* S > 1 uses 2 C FK_CHUNK floats of scratch (xb, exb); S == 1 its own 2 C fk_row_batch(C) (below) */
    float *xb = scratch, *exb = scratch + C * FK_CHUNK;
    const int want_grad = grad_out != NULL;
    int64_t bad = 0; /* class indices outside [0, C) that are not ignore_index */
    for (int64_t r = start; r < end; r++) bad += (tp[r] < 0 || tp[r] >= C) && !(has_ignore && tp[r] == ignore_index);
    if (S == 1) {
        /* batches of rows: per row the vectorised sums (fk_softmax_row_sums), then the tail across the batch */
        const int64_t R = fk_row_batch(C);
        float *xrows = scratch, *erows = scratch + R * C;
        double block_acc = 0.0;
        float m[FK_CHUNK], ssum[FK_CHUNK], sp[FK_CHUNK], xt[FK_CHUNK], wr[FK_CHUNK];
        for (int64_t r0 = start; r0 < end; r0 += R) {
            const int nr = (int)((end - r0) < R ? (end - r0) : R);
            for (int i = 0; i < nr; i++) {
                const int64_t r = r0 + i, ti = tp[r];
                const int valid = ti >= 0 && ti < C && !(has_ignore && ti == ignore_index);
                tloc[i] = valid ? ti : -1;
                wr[i] = valid ? (wt ? wt[ti] : 1.0f) : 0.0f;
                if (wr[i] == 0.0f) { /* ignored, invalid or weight 0: loss and gradient 0 */
                    m[i] = 0.0f; ssum[i] = 1.0f; sp[i] = 0.0f; xt[i] = 0.0f;
                    continue;
                }
                const float *xr;
                if (xdt == FK_F32) xr = (const float *)xp + r * C;
                else { fk_load(xp, xdt, r * C, (int)C, xrows + i * C); xr = xrows + i * C; }
                xt[i] = xr[ti];
                if (want_grad) /* float32: the exponentials go straight to the gradient's row, scaled there below */
                    fk_softmax_row_sums(C, xr, ti, 1, xdt == FK_F32 ? (float *)grad_out + r * C : erows + i * C,
                                        &m[i], &ssum[i], &sp[i]);
                else
                    fk_softmax_row_sums(C, xr, ti, 0, NULL, &m[i], &ssum[i], &sp[i]);
            }
            if (eps != 0.0f)
                fk_softmax_cols_tail(nr, m, ssum, sp, xt, wr, gamma, red.lth, red.bound, eps, 1, loss, coef, gt);
            else
                fk_softmax_cols_tail(nr, m, ssum, sp, xt, wr, gamma, red.lth, red.bound, 0.0f, 0, loss, coef, gt);
            for (int i = 0; i < nr; i++) {
                const int64_t r = r0 + i;
                if (loss_out) loss_out[r] = loss[i];
                if (block_sums) fk_row_sum(block_sums, r, end, (double)loss[i], &block_acc);
            }
            if (want_grad) {
                for (int i = 0; i < nr; i++) {
                    const int direct = xdt == FK_F32;
                    float *er = direct ? (float *)grad_out + (r0 + i) * C : erows + i * C;
                    if (wr[i] == 0.0f) {
                        memset(er, 0, (size_t)C * 4);
                    } else {
                        const float ci = coef[i];
#pragma omp simd
                        for (int64_t k = 0; k < C; k++) er[k] *= ci;
                        er[tloc[i]] = gt[i];
                    }
                    if (!direct) fk_store(grad_out, xdt, (r0 + i) * C, (int)C, er);
                }
            }
        }
        return bad;
    }
    int64_t col = start;
    while (col < end) {
        int64_t n = col / S, s = col - n * S;
        /* a chunk stays within one n (columns contiguous in s) and within one sum block */
        int64_t lim = end - col;
        if (lim > S - s) lim = S - s;
        if (lim > FK_CHUNK) lim = FK_CHUNK;
        if (lim > FK_BLOCK - col % FK_BLOCK) lim = FK_BLOCK - col % FK_BLOCK;
        int nc = (int)lim;
        for (int64_t k = 0; k < C; k++) fk_load(xp, xdt, (n * C + k) * S + s, nc, xb + k * nc);
        for (int i = 0; i < nc; i++) tloc[i] = tp[col + i];
        /* float32: the exponentials go straight to the gradient's rows (stride S), scaled there below */
        const int direct = want_grad && xdt == FK_F32;
        float *eb = direct ? (float *)grad_out + n * C * S + s : exb;
        const int64_t estride = direct ? S : nc;
        if (want_grad)
            fk_softmax_cols(nc, C, xb, tloc, wt, gamma, red.lth, red.bound, eps, ignore_index, has_ignore, 1, eb,
                            estride, loss, coef, gt);
        else
            fk_softmax_cols(nc, C, xb, tloc, wt, gamma, red.lth, red.bound, eps, ignore_index, has_ignore, 0, NULL,
                            0, loss, coef, gt);
        if (loss_out) memcpy(loss_out + col, loss, (size_t)nc * 4);
        if (block_sums) block_sums[col / FK_BLOCK] += fk_sum_chunk(nc, loss);
        if (want_grad) {
            for (int64_t k = 0; k < C; k++) {
                float *er = eb + k * estride;
#pragma omp simd
                for (int i = 0; i < nc; i++) er[i] = (tloc[i] == k) ? gt[i] : er[i] * coef[i];
            }
            if (!direct)
                for (int64_t k = 0; k < C; k++) fk_store(grad_out, xdt, (n * C + k) * S + s, nc, exb + k * nc);
        }
        col += nc;
    }
    return bad;
}

FK_EXPORT int64_t fk_softmax_focal(const void *xp, int xdt, const int64_t *tp, const float *wt, float gamma,
                                   double reduced_threshold, int64_t ignore_index, int has_ignore, int64_t N,
                                   int64_t C, int64_t S, int64_t start, int64_t end, float *loss_out, void *grad_out,
                                   double *block_sums, float *scratch, int64_t scratch_stride, int threads,
                                   int64_t piece) {
    (void)N;
    const fk_reduced red = fk_reduced_scalars(reduced_threshold);
    FK_PIECES(start, end, threads, piece,
              fk_softmax_driver(xp, xdt, tp, wt, gamma, red, 0.0f, ignore_index, has_ignore, C, S, s, e, loss_out,
                                grad_out, block_sums, scratch + tid * scratch_stride));
}

/*
 * Poly-1 cross-entropy with class-index targets: per column w_t (-log p_t + epsilon (1 - p_t)) (the softmax focal
 * loss' pass with gamma = 0 and the poly term; fk_softmax_cols_tail, fk_poly1_ce), gradient
 * w_t (1 + epsilon p_t) (p - onehot(t)). wt: the per-class weight (C,) or NULL. The other arguments and the return
 * value are those of fk_softmax_focal.
 */
FK_EXPORT int64_t fk_poly1_cross_entropy(const void *xp, int xdt, const int64_t *tp, const float *wt, float epsilon,
                                         int64_t ignore_index, int has_ignore, int64_t N, int64_t C, int64_t S,
                                         int64_t start, int64_t end, float *loss_out, void *grad_out,
                                         double *block_sums, float *scratch, int64_t scratch_stride, int threads,
                                         int64_t piece) {
    (void)N;
    const fk_reduced red = fk_reduced_scalars(0.0);
    FK_PIECES(start, end, threads, piece,
              fk_softmax_driver(xp, xdt, tp, wt, 0.0f, red, epsilon, ignore_index, has_ignore, C, S, s, e, loss_out,
                                grad_out, block_sums, scratch + tid * scratch_stride));
}

/* ------------------------------------------------------------------------------------------------ */
/* Soft-target softmax focal loss (op softmax_focal_soft): per row (column (n, :, s) of (N, C, S) logits), with      */
/* q_c the class probabilities (or the one-hot of a class index), smoothed as q (1 - ls) + ls / C, times the class   */
/* weight w_c, and p = softmax(x), m = max_k x_k, e_c = exp(x_c - m), S' = the sum of e_c below the maximum plus the */
/* number of tied maxima less one, S = 1 + S', log S = log1p(S'):                                                    */
/*   log p_c = x_c - m - log S,  u_c = 1 - p_c (S' / S at the maximum: no cancellation when one class dominates),   */
/*   L = sum_c q_c w_c u_c^g (-log p_c),                                                                             */
/*   B_c = q_c w_c u_c^g (1 - g p_c log p_c / u_c)  (log p_c / u_c -> -1 where u_c = 0),                              */
/*   dL/dx_j = p_j sum_c B_c - B_j                                                                                   */
/* (pytorch/softmax.py forward_soft; u is clamped at FLT_MIN before its log, where that back-end clamps S'_c: the    */
/* factors differ only below FLT_MIN^g). Rows that are not contiguous float32 are gathered into float scratch rows   */
/* (xr, tr; er, br hold the exponentials and B: 4 C floats per thread), so any S and dtype share one loop.           */

/* u^g for u in [0, 1]: 1 for g = 0, u u for g = 2, else exp(g log max(u, FLT_MIN)). */
static inline __attribute__((always_inline)) float fk_soft_power(float u, float g, const int square) {
    if (square) return u * u;
    float lu = fk_log(u > 1.17549435e-38f ? u : 1.17549435e-38f);
    return g == 0.0f ? 1.0f : fk_exp(g * lu);
}

/* The weighted, smoothed target of class c: (t_c (1 - ls) + ls / C) w_c, with t_c = tr[c] (class probabilities)
 * or [c = ti] (index != 0: a class index). */
static inline __attribute__((always_inline)) float fk_soft_target(const float *tr, int64_t ti, int64_t c, float keep,
                                                                 float spread, const float *wt, const int index,
                                                                 const int weighted) {
    float t = index ? (c == ti ? 1.0f : 0.0f) : tr[c];
    float q = t * keep + spread;
    return weighted ? q * wt[c] : q;
}

/* One row: logits xr, targets tr (or class index ti), returns the loss; with br != NULL also writes the gradient to
 * gr (may alias er). er, br: C floats of scratch. The largest logit's u is S' / S, S' the sum over the other classes
 * (tied maxima count 1 each), so no index of the maximum is needed. */
static inline __attribute__((always_inline)) float
fk_softmax_soft_row(int64_t C, const float *restrict xr, const float *tr, int64_t ti, float keep, float spread,
                    const float *wt, float g, const int square, const int index, const int weighted, float *er,
                    float *br, float *gr) {
    float m = xr[0];
    int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (int64_t c = 0; c < C; c++) {
        m = xr[c] > m ? xr[c] : m;
        nan |= xr[c] != xr[c];
    }
    float rest = 0.0f, ties = 0.0f; /* S' = sum of e_c below the maximum + (number of maxima - 1) */
#pragma omp simd reduction(+ : rest, ties)
    for (int64_t c = 0; c < C; c++) {
        float e = fk_exp_neg(xr[c] - m);
        er[c] = e;
        rest += xr[c] == m ? 0.0f : e;
        ties += xr[c] == m ? 1.0f : 0.0f;
    }
    rest += ties - 1.0f; /* (ties - 1 is 0 without a tie: S' keeps its relative accuracy when it is tiny) */
    if (nan) rest = NAN; /* a NaN logit makes the row's loss and gradient NaN (fk_exp_neg maps NaN to 0) */
    /* log1p(S'): S' in [0, C - 1]; above 1, 1 + S' rounds to 2^-24 relative, 2^-24 / log 2 of the log */
    const float ls = rest <= 1.0f ? fk_log1p01(rest) : fk_log(1.0f + rest);
    const float inv = 1.0f / (1.0f + rest), utop = rest * inv;
    float loss = 0.0f, sumb = 0.0f;
    if (br == NULL) {
#pragma omp simd reduction(+ : loss)
        for (int64_t c = 0; c < C; c++) {
            float q = fk_soft_target(tr, ti, c, keep, spread, wt, index, weighted);
            float lp = (xr[c] - m) - ls;
            float u = xr[c] == m ? utop : 1.0f - er[c] * inv;
            loss += q == 0.0f ? 0.0f : q * fk_soft_power(u, g, square) * -lp;
        }
        return loss;
    }
    float sumb_low = 0.0f; /* sum of B_c over the classes below the maximum */
#pragma omp simd reduction(+ : loss, sumb, sumb_low)
    for (int64_t c = 0; c < C; c++) {
        float q = fk_soft_target(tr, ti, c, keep, spread, wt, index, weighted);
        float lp = (xr[c] - m) - ls;
        float p = er[c] * inv;
        float u = xr[c] == m ? utop : 1.0f - p;
        float wu = q * fk_soft_power(u, g, square);
        float ratio = u > 0.0f ? lp / (u > 0.0f ? u : 1.0f) : -1.0f;
        float b = q == 0.0f ? 0.0f : wu * (1.0f - g * p * ratio);
        loss += q == 0.0f ? 0.0f : wu * -lp;
        br[c] = b;
        sumb += b;
        sumb_low += xr[c] == m ? 0.0f : b;
    }
    /* a single maximum: p sum B - B = p sum_{c != top} B_c - B u, with u = S' / S, which does not cancel when p -> 1
     * (-u for a one-hot target at gamma = 0) */
    const int single = ties == 1.0f;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        float p = er[c] * inv;
        gr[c] = (single && xr[c] == m) ? p * sumb_low - br[c] * utop : p * sumb - br[c];
    }
    return loss;
}

/* the row loop specialised on (gamma == 2, class-index target, class weight) */
#define FK_SOFT_ROW(SQ, IX, WT) loss = fk_softmax_soft_row(C, x, t, ti, keep, spread, wt, gamma, SQ, IX, WT, er, b, gr)
static int64_t fk_softmax_soft_driver(const void *xp, int xdt, const void *tp, int tdt, const float *wt, float gamma,
                                      double smoothing, int64_t ignore_index, int has_ignore, int64_t C, int64_t S,
                                      int64_t start, int64_t end, float *loss_out, void *grad_out, double *block_sums,
                                      float *scratch) {
    float *xr = scratch, *tr = scratch + C, *er = scratch + 2 * C, *br = scratch + 3 * C;
    const int want_grad = grad_out != NULL;
    const float keep = (float)(1.0 - smoothing), spread = (float)(smoothing / (double)C);
    int64_t bad = 0; /* class indices outside [0, C) that are not ignore_index */
    double block_acc = 0.0;
    for (int64_t r = start; r < end; r++) {
        const int64_t n = r / S, s = r - n * S, base = n * C * S + s;
        float loss = 0.0f;
        int64_t ti = -1;
        const float *t = NULL;
        int zero = 0; /* an ignored or invalid class index: loss and gradient 0 */
        if (tdt == FK_I64) {
            ti = ((const int64_t *)tp)[r];
            if (has_ignore && ti == ignore_index) zero = 1;
            else if (ti < 0 || ti >= C) { bad++; zero = 1; }
        } else if (S == 1 && tdt == FK_F32) {
            t = (const float *)tp + base;
        } else {
            if (S == 1) fk_load(tp, tdt, base, (int)C, tr);
            else for (int64_t c = 0; c < C; c++) fk_load(tp, tdt, base + c * S, 1, tr + c);
            t = tr;
        }
        const int direct = want_grad && S == 1 && xdt == FK_F32 && !zero; /* the gradient written in place */
        if (!zero) {
            const float *x = xr;
            if (S == 1 && xdt == FK_F32) x = (const float *)xp + base;
            else if (S == 1) fk_load(xp, xdt, base, (int)C, xr);
            else for (int64_t c = 0; c < C; c++) fk_load(xp, xdt, base + c * S, 1, xr + c);
            float *gr = direct ? (float *)grad_out + base : er;
            float *b = want_grad ? br : NULL;
            const int code = (gamma == 2.0f ? 4 : 0) | (t == NULL ? 2 : 0) | (wt != NULL ? 1 : 0);
            switch (code) {
            case 0: FK_SOFT_ROW(0, 0, 0); break;
            case 1: FK_SOFT_ROW(0, 0, 1); break;
            case 2: FK_SOFT_ROW(0, 1, 0); break;
            case 3: FK_SOFT_ROW(0, 1, 1); break;
            case 4: FK_SOFT_ROW(1, 0, 0); break;
            case 5: FK_SOFT_ROW(1, 0, 1); break;
            case 6: FK_SOFT_ROW(1, 1, 0); break;
            default: FK_SOFT_ROW(1, 1, 1); break;
            }
        } else if (want_grad) {
            for (int64_t c = 0; c < C; c++) er[c] = 0.0f;
        }
        if (want_grad && !direct) {
            if (S == 1) fk_store(grad_out, xdt, base, (int)C, er);
            else for (int64_t c = 0; c < C; c++) fk_store(grad_out, xdt, base + c * S, 1, er + c);
        }
        if (loss_out) loss_out[r] = loss;
        if (block_sums) fk_row_sum(block_sums, r, end, (double)loss, &block_acc);
    }
    return bad;
}

/*
 * Soft-target softmax focal loss over rows [start, end) of logits viewed as (N, C, S) (row r = n S + s).
 * tdt: FK_F32/FK_F16/FK_BF16 (class probabilities of the logits' shape) or FK_I64 (class indices, shape (N, S);
 * ignore_index rows and indices outside [0, C) give loss and gradient 0, the latter counted in the return value).
 * wt: per-class weight (C,) or NULL; smoothing: label smoothing ls in [0, 1]. scratch: 4 C floats per thread
 * (scratch_stride apart). The other arguments are those of fk_softmax_focal.
 */
FK_EXPORT int64_t fk_softmax_soft_focal(const void *xp, int xdt, const void *tp, int tdt, const float *wt, float gamma,
                                        double smoothing, int64_t ignore_index, int has_ignore, int64_t N, int64_t C,
                                        int64_t S, int64_t start, int64_t end, float *loss_out, void *grad_out,
                                        double *block_sums, float *scratch, int64_t scratch_stride, int threads,
                                        int64_t piece) {
    (void)N;
    FK_PIECES(start, end, threads, piece,
              fk_softmax_soft_driver(xp, xdt, tp, tdt, wt, gamma, smoothing, ignore_index, has_ignore, C, S, s, e,
                                     loss_out, grad_out, block_sums, scratch + tid * scratch_stride));
}

/* ------------------------------------------------------------------------------------------------ */
/* The logistic family: per-element losses of p = sigmoid(x) and a target y in [0, 1] (ops           */
/* quality_focal, varifocal, gaussian_focal, asymmetric, poly1_focal). One kernel; the loss code picks */
/* a compile-time specialised loop (FK_FAM_DEFINE), the logistic quantities are formed once:          */
/*   e = exp(-|x|), l = log1p(e), p = sigmoid(x), pc = 1 - p (both without subtraction),              */
/*   spp = softplus(x) = -log(1 - p) = max(x, 0) + l,  spn = softplus(-x) = -log p = max(-x, 0) + l,  */
/*   BCE(p, y) = y spn + (1 - y) spp,  d BCE / dx = (1 - y) p - y pc.                                  */
/* Each body mirrors the closed form of focalkit/backends/pytorch/<loss>.py `forward`.                */

enum { FK_QUALITY = 0, FK_VARIFOCAL = 1, FK_GAUSSIAN = 2, FK_ASYMMETRIC = 3, FK_POLY1 = 4 };

#define FK_FLT_MAX 3.40282347e38f
#define FK_FLT_MIN 1.17549435e-38f
#define FK_LOG_SPACE_BELOW 1e-30f /* focalkit.semantics.LOG_SPACE_BELOW */

/* a loss' scalar parameters, passed by value so that they stay in registers across the vectorised loop */
typedef struct {
    float v[4];
} fk_params;

/* Quality focal (pytorch/quality.py): |y - p|^b BCE, |d| in closed form for hard targets, v the row validity.
 * prm: [beta]; glim: the gradient dtype's largest finite value (the cusp of beta < 1 saturates there). */
static inline __attribute__((always_inline)) float
fk_quality_elem(fk_logit s, float y, float v, const fk_params prm, float glim, const int want_grad, float *grad) {
    const float b = prm.v[0];
    float ym = 1.0f - y;
    float ce = y * s.spn + ym * s.spp;
    float d = y * s.pc - ym * s.p;
    float ad = d < 0.0f ? -d : d;
    int zero = y == 0.0f, one = y == 1.0f;
    int rep = ad > FK_LOG_SPACE_BELOW;
    float lrep = fk_log(rep ? ad : 1.0f);
    float lad = rep ? lrep : (zero ? -s.spn : (one ? -s.spp : 0.0f));
    int live = rep | zero | one;
    float mod = live ? fk_exp(b * lad) : (b == 0.0f ? 1.0f : 0.0f);
    float loss = v * mod * ce;
    if (want_grad) {
        float sgn = zero ? -1.0f : (one ? 1.0f : (d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f)));
        sgn = live ? sgn : 0.0f;
        float mag = fk_exp((b + 1.0f) * lad);
        if (b != 0.0f) {
            /* b |d|^(b - 1) p (1 - p) CE in one exponential; CE = 0 gives 0 */
            float lce = fk_log(ce > FK_FLT_MIN ? ce : FK_FLT_MIN);
            float t = fk_exp((b - 1.0f) * lad - s.spn - s.spp + lce);
            mag += ce > 0.0f ? b * t : 0.0f;
        }
        float g = -sgn * mag * v;
        g = g > glim ? glim : g;
        g = g < -glim ? -glim : g;
        *grad = g;
    }
    return loss;
}

/* Varifocal (pytorch/varifocal.py): [l w+ + (1 - l) alpha p^gamma] BCE(p, q), l = [q > 0] or the given label.
 * prm: [alpha, gamma, iou_weighted (1 or 0)]. */
static inline __attribute__((always_inline)) float
fk_varifocal_elem(fk_logit s, float q, float label, const fk_params prm, const int want_grad, float *grad) {
    const float alpha = prm.v[0], gamma = prm.v[1], iw = prm.v[2];
    float qm = 1.0f - q;
    float ce = q * s.spn + qm * s.spp;
    float pw = label * (iw * q + (1.0f - iw));
    float nw = (1.0f - label) * alpha * fk_exp(-gamma * s.spn);
    if (want_grad) {
        float dce = qm * s.p - q * s.pc;
        *grad = pw * dce + nw * (gamma * s.pc * ce + dce);
    }
    return (pw + nw) * ce;
}

/* Gaussian focal from logits (pytorch/gaussian.py): peaks y == 1 (1 - p)^a (-log p), elsewhere
 * (1 - y)^b p^a (-log(1 - p)). prm: [alpha, beta]. */
static inline __attribute__((always_inline)) float
fk_gaussian_elem(fk_logit s, float y, const fk_params prm, const int want_grad, float *grad) {
    const float a = prm.v[0], b = prm.v[1];
    int peak = y == 1.0f;
    float base = peak ? 1.0f : 1.0f - y;
    float negw = peak ? 0.0f : (b == 0.0f ? 1.0f : fk_exp(b * fk_log(base > FK_FLT_MIN ? base : FK_FLT_MIN)));
    float posw = peak ? 1.0f : 0.0f;
    float qa = fk_exp(-a * s.spp); /* (1 - p)^a */
    float pa = fk_exp(-a * s.spn); /* p^a */
    if (want_grad) *grad = negw * pa * (a * s.pc * s.spp + s.p) - posw * qa * (a * s.p * s.spn + s.pc);
    return posw * qa * s.spn + negw * pa * s.spp;
}

/* b^k for a loop-uniform integer k in [0, 15], by squaring (four selects on the bits of k, no exp / log). */
static inline __attribute__((always_inline)) float fk_ipow(float b, int k) {
    float b2 = b * b, b4 = b2 * b2, b8 = b4 * b4;
    float r = fk_pick(k & 1, b, 1.0f);
    r *= fk_pick(k & 2, b2, 1.0f);
    r *= fk_pick(k & 4, b4, 1.0f);
    return r * fk_pick(k & 8, b8, 1.0f);
}

/* log((1 + f) 2^k) = k log 2 + 2 atanh(s), s = f / (2 + f), for f in [sqrt(1/2) - 1, sqrt(2) - 1] (|s| <= 0.172,
 * the series of fk_log), and *rq = 1 / qm from the same division (1 / ((2 + f) qm), qm > 0). */
static inline __attribute__((always_inline)) float fk_log_scaled(float f, int32_t k, float qm, float *rq) {
    float inv = 1.0f / ((2.0f + f) * qm);
    float s = f * qm * inv;
    *rq = (2.0f + f) * inv;
    float s2 = s * s;
    float p = 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    float lf = 2.0f * s + 2.0f * s * s2 * p;
    float kf = (float)k;
    return kf * 0.693145751953125f + (lf + kf * 1.428606765330187e-06f);
}

/* The argument of fk_log_scaled for log(a), a = 1 - c > 0 normal given with c = 1 - a accurate: a split as in fk_log
 * into 2^k (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)); where k = 0, f = a - 1 is taken as -c, so that log(a) =
 * log1p(-c) keeps its relative accuracy for tiny c (a itself is rounded near 1). For log(1 - p_m): a = qm =
 * (1 - p) + m, c = p_m; for log(1 + e): a = 1 + e, c = -e. */
static inline __attribute__((always_inline)) void fk_log_argument(float a, float c, float *f, int32_t *k) {
    int32_t ia = fk_asint(a) - 0x3f3504f3;
    int32_t mb = (ia & 0x007fffff) + 0x3f3504f3;
    *k = ia >> 23;
    *f = *k == 0 ? -c : fk_asfloat(mb) - 1.0f;
}

/* The shared negative-part quantities for clip m > 0: p_m = max(p - m, 0) and qm = 1 - p_m = (1 - p) + m. */
static inline __attribute__((always_inline)) float fk_clipped(fk_logit s, float m, int *live, float *qm) {
    float shifted = s.p - m;
    *live = shifted > 0.0f;
    *qm = s.pc + m;
    return *live ? shifted : 0.0f;
}

/* The negative part's weight p_m^g- (int_gn: by multiplications, with *pw1 = p_m^(g- - 1), 0 for g- = 0) for clip > 0;
 * 0 where p <= m. KN: g- as a compile-time integer (-1: not known at compile time); for KN >= 2 the products of
 * p_m = 0 are already 0 where p <= m. */
static inline __attribute__((always_inline)) float fk_clipped_weight(float pm, int live, float gn, int kn,
                                                                     const int int_gn, const int KN, float *pw1) {
    if (KN >= 2) {
        *pw1 = fk_ipow(pm, KN - 1);
        return *pw1 * pm;
    }
    if (int_gn) {
        float pw = fk_ipow(pm, kn >= 1 ? kn - 1 : 0);
        *pw1 = (kn >= 1) & live ? pw : 0.0f;
        return live ? (kn >= 1 ? pw * pm : 1.0f) : 0.0f;
    }
    *pw1 = 0.0f;
    float lpm = fk_log(pm > FK_FLT_MIN ? pm : FK_FLT_MIN);
    return live ? (gn == 0.0f ? 1.0f : fk_exp(gn * lpm)) : 0.0f;
}

/* d/dx of p_m^g- (-log(1 - p_m)) = p (1 - p) [g- p_m^(g- - 1) (-log(1 - p_m)) + p_m^g- / (1 - p_m)] (exact), or
 * p (1 - p) p_m^g- / (1 - p_m) (detached focusing weight). Without int_gn, g- p_m^(g- - 1) is g- p_m^g- times the
 * ratio -log(1 - p_m) / p_m (limit 1 at p_m = 0). */
static inline __attribute__((always_inline)) float fk_clipped_grad(float pq, float pm, float wneg, float pw1,
                                                                   float negce, float rq, float gn, int detach,
                                                                   const int int_gn) {
    float wq = wneg * rq;
    float focus;
    if (int_gn) {
        focus = gn * pw1 * negce;
    } else {
        float ratio = pm > 0.0f ? negce / (pm > 0.0f ? pm : 1.0f) : 1.0f;
        focus = wneg * gn * ratio;
    }
    return pq * fk_pick(detach, wq, focus + wq);
}

/* Asymmetric (pytorch/asymmetric.py): y (1 - p)^g+ (-log p) + (1 - y) p_m^g- (-log(1 - p_m)), p_m = max(p - m, 0).
 * prm: [gamma_pos, gamma_neg, clip m, detach_focal_weight (1 or 0)]. Compile-time flags select the work a call
 * needs: clipped (m > 0), gp_zero (gamma_pos == 0: no positive weight), int_gn (gamma_neg an integer in [0, 15]:
 * p_m^g- by multiplications, p_m^(g- - 1) in the gradient instead of the ratio -log(1 - p_m) / p_m). Branch-free
 * (selects on the uniform detach flag) so that the loop vectorises. */
static inline __attribute__((always_inline)) float
fk_asymmetric_elem(fk_logit s, float y, const fk_params prm, const int want_grad, const int clipped,
                   const int gp_zero, const int int_gn, float *grad) {
    const float gp = prm.v[0], gn = prm.v[1], m = prm.v[2];
    const int detach = prm.v[3] != 0.0f;
    const int kn = int_gn ? (int)gn : 0;
    float wpos = gp_zero ? 1.0f : fk_exp(-gp * s.spp);
    float lpos = wpos * s.spn;
    float wneg, negce, gneg_exact = 0.0f, gneg_detached = 0.0f;
    if (clipped) {
        int live;
        float qm, f, rq, pw1;
        int32_t k;
        float pm = fk_clipped(s, m, &live, &qm);
        fk_log_argument(qm, pm, &f, &k);
        negce = -fk_log_scaled(f, k, qm, &rq);
        wneg = fk_clipped_weight(pm, live, gn, kn, int_gn, -1, &pw1);
        if (want_grad) {
            gneg_exact = fk_clipped_grad(s.q * s.eq, pm, wneg, pw1, negce, rq, gn, 0, int_gn);
            gneg_detached = fk_clipped_grad(s.q * s.eq, pm, wneg, pw1, negce, rq, gn, 1, int_gn);
        }
    } else {
        wneg = int_gn ? fk_ipow(s.p, kn) : fk_exp(-gn * s.spn);
        negce = s.spp;
        if (want_grad) {
            gneg_exact = wneg * (gn * s.pc * s.spp + s.p);
            gneg_detached = wneg * s.p;
        }
    }
    float ym = 1.0f - y;
    if (want_grad) {
        float gpos_exact = gp_zero ? -s.pc : -wpos * (gp * s.p * s.spn + s.pc);
        float gpos_detached = -wpos * s.pc;
        float gpos = fk_pick(detach, gpos_detached, gpos_exact);
        float gneg = fk_pick(detach, gneg_detached, gneg_exact);
        *grad = y * gpos + ym * gneg;
    }
    return y * lpos + ym * wneg * negce;
}

/* The asymmetric loss for binary targets (y in {0, 1}), gamma_pos = 0, clip m > 0 and the exact gradient (the paper's
 * setting): each
 * element needs one log, -log p = softplus(-x) = max(-x, 0) + log1p(e) for y = 1 or -log(1 - p_m) for y = 0, so the
 * argument of one series is selected per element. KN: gamma_neg as a compile-time integer 0..8 (p_m^g- by a fixed
 * product), -1: an integer 0..15 known at run time, -2: any gamma_neg (exp(g- log p_m)). */
static inline __attribute__((always_inline)) float
fk_asymmetric_binary_elem(float x, float y, const fk_params prm, const int want_grad, const int KN, float *grad) {
    const float gn = prm.v[1], m = prm.v[2];
    const int int_gn = KN >= -1, kn = KN >= 0 ? KN : (int_gn ? (int)gn : 0);
    fk_logit s;
    s.ax = x < 0.0f ? -x : x;
    s.e = fk_exp_neg_abs(s.ax);
    s.q = 1.0f / (1.0f + s.e);
    s.eq = s.e * s.q;
    s.nonneg = x >= 0.0f;
    s.p = s.nonneg ? s.q : s.eq;
    s.pc = s.nonneg ? s.eq : s.q;
    int live;
    float qm, f, rq, pw1;
    int32_t k;
    float pm = fk_clipped(s, m, &live, &qm);
    pm = x != x ? x : pm; /* a NaN logit gives a NaN loss (through p_m^g-, and -x for y = 1) */
    int pos = y != 0.0f;
    fk_log_argument(pos ? 1.0f + s.e : qm, pos ? -s.e : pm, &f, &k);
    float lg = fk_log_scaled(f, k, qm, &rq); /* log1p(e), or log(1 - p_m) */
    float negce = -lg;
    float wneg = fk_clipped_weight(pm, live, gn, kn, int_gn, KN, &pw1);
    if (want_grad) {
        float gneg = fk_clipped_grad(s.q * s.eq, pm, wneg, pw1, negce, rq, gn, 0, int_gn);
        *grad = pos ? -s.pc : gneg;
    }
    return pos ? (x > 0.0f ? 0.0f : -x) + lg : wneg * negce;
}

/* One out-of-line loop per (gradient, clipped, gp_zero, int_gn) variant. */
typedef void (*fk_asymmetric_fn)(int n, const float *restrict x, const float *restrict y, const fk_params prm,
                                 float *restrict loss, float *restrict grad);
#define FK_ASYM_DEFINE(WG, CL, GZ, IG)                                                                             \
    static __attribute__((noinline)) void fk_asymmetric_##WG##CL##GZ##IG(                                         \
        int n, const float *restrict x, const float *restrict y, const fk_params prm, float *restrict loss,        \
        float *restrict grad) {                                                                                    \
        _Pragma("omp simd") for (int i = 0; i < n; i++) {                                                          \
            float gi = 0.0f;                                                                                       \
            loss[i] = fk_asymmetric_elem(fk_logistic(x[i]), y[i], prm, WG, CL, GZ, IG, &gi);                       \
            if (WG) grad[i] = gi;                                                                                  \
        }                                                                                                          \
    }
#define FK_ASYM_DEFINE_WG(WG)                                                                                      \
    FK_ASYM_DEFINE(WG, 0, 0, 0) FK_ASYM_DEFINE(WG, 0, 0, 1) FK_ASYM_DEFINE(WG, 0, 1, 0) FK_ASYM_DEFINE(WG, 0, 1, 1) \
    FK_ASYM_DEFINE(WG, 1, 0, 0) FK_ASYM_DEFINE(WG, 1, 0, 1) FK_ASYM_DEFINE(WG, 1, 1, 0) FK_ASYM_DEFINE(WG, 1, 1, 1)
FK_ASYM_DEFINE_WG(0)
FK_ASYM_DEFINE_WG(1)
#define FK_ASYM_BINARY_DEFINE(WG, KN, NAME)                                                                        \
    static __attribute__((noinline)) void fk_asymmetric_binary_##WG##_##NAME(                                     \
        int n, const float *restrict x, const float *restrict y, const fk_params prm, float *restrict loss,        \
        float *restrict grad) {                                                                                    \
        _Pragma("omp simd") for (int i = 0; i < n; i++) {                                                          \
            float gi = 0.0f;                                                                                       \
            loss[i] = fk_asymmetric_binary_elem(x[i], y[i], prm, WG, KN, &gi);                                     \
            if (WG) grad[i] = gi;                                                                                  \
        }                                                                                                          \
    }
#define FK_ASYM_BINARY_DEFINE_WG(WG)                                                                               \
    FK_ASYM_BINARY_DEFINE(WG, -2, any) FK_ASYM_BINARY_DEFINE(WG, -1, int) FK_ASYM_BINARY_DEFINE(WG, 0, 0)          \
    FK_ASYM_BINARY_DEFINE(WG, 1, 1) FK_ASYM_BINARY_DEFINE(WG, 2, 2) FK_ASYM_BINARY_DEFINE(WG, 3, 3)               \
    FK_ASYM_BINARY_DEFINE(WG, 4, 4) FK_ASYM_BINARY_DEFINE(WG, 5, 5) FK_ASYM_BINARY_DEFINE(WG, 6, 6)               \
    FK_ASYM_BINARY_DEFINE(WG, 7, 7) FK_ASYM_BINARY_DEFINE(WG, 8, 8)
FK_ASYM_BINARY_DEFINE_WG(0)
FK_ASYM_BINARY_DEFINE_WG(1)
#define FK_ASYM_BINARY_ROW(WG)                                                                                     \
    fk_asymmetric_binary_##WG##_any, fk_asymmetric_binary_##WG##_int, fk_asymmetric_binary_##WG##_0,              \
        fk_asymmetric_binary_##WG##_1, fk_asymmetric_binary_##WG##_2, fk_asymmetric_binary_##WG##_3,              \
        fk_asymmetric_binary_##WG##_4, fk_asymmetric_binary_##WG##_5, fk_asymmetric_binary_##WG##_6,              \
        fk_asymmetric_binary_##WG##_7, fk_asymmetric_binary_##WG##_8
#define FK_ASYM_ROW(WG)                                                                                            \
    fk_asymmetric_##WG##000, fk_asymmetric_##WG##001, fk_asymmetric_##WG##010, fk_asymmetric_##WG##011,          \
        fk_asymmetric_##WG##100, fk_asymmetric_##WG##101, fk_asymmetric_##WG##110, fk_asymmetric_##WG##111
static const fk_asymmetric_fn fk_asymmetric_variants[2][8] = {{FK_ASYM_ROW(0)}, {FK_ASYM_ROW(1)}};
/* [gradient][KN + 2] */
static const fk_asymmetric_fn fk_asymmetric_binary_variants[2][11] = {{FK_ASYM_BINARY_ROW(0)},
                                                                       {FK_ASYM_BINARY_ROW(1)}};

/* binary != 0: every target of the chunk is exactly 0 or 1. */
static void fk_asymmetric_chunk(int n, const float *restrict x, const float *restrict y, const float *restrict prm,
                                int want_grad, int binary, float *restrict loss, float *restrict grad) {
    const fk_params p = {{prm[0], prm[1], prm[2], prm[3]}};
    const float gn = prm[1];
    const int int_gn = gn >= 0.0f && gn <= 15.0f && gn == (float)(int)gn;
    const int clipped = prm[2] > 0.0f, gp_zero = prm[0] == 0.0f;
    if (binary && clipped && gp_zero && prm[3] == 0.0f) {
        int kn = int_gn ? (gn <= 8.0f ? (int)gn : -1) : -2;
        fk_asymmetric_binary_variants[want_grad ? 1 : 0][kn + 2](n, x, y, p, loss, grad);
        return;
    }
    const int variant = (clipped ? 4 : 0) | (gp_zero ? 2 : 0) | (int_gn ? 1 : 0);
    fk_asymmetric_variants[want_grad ? 1 : 0][variant](n, x, y, p, loss, grad);
}

/* Poly-1 focal (pytorch/poly.py forward_focal): u^g V, u = 1 - p_t, V = a_t BCE + eps u.
 * at: alpha_t (1 without per-class alpha). prm: [gamma, epsilon]. u^g and r = p (1 - p) / u as in the sigmoid body. */
static inline __attribute__((always_inline)) float
fk_poly1_elem(fk_logit s, float y, float at, const fk_params prm, const int want_grad, float *grad) {
    const float g = prm.v[0], eps = prm.v[1];
    float ym = 1.0f - y;
    float yc = s.nonneg ? y : ym, ycomp = s.nonneg ? ym : y;
    int small = ycomp == 0.0f; /* target on the predicted side: u = e q */
    float A = s.e * yc + ycomp;
    float la = small ? -s.ax : fk_log(small ? 1.0f : A);
    float mod = fk_pick(g == 0.0f, 1.0f, fk_exp(g * (la - s.l)));
    float r = small ? s.q : s.eq / (small ? 1.0f : A);
    /* the terms of y and of 1 - y: a s + eps (1 - e^{-s}), or (a + eps) s + (-eps) g(s) for eps < 0 (selects on the
     * uniform sign of eps, so that the loop vectorises) */
    const int neg = eps < 0.0f;
    const float epsn = neg ? eps : 0.0f, ae = neg ? -eps : eps;
    float a = at + epsn;
    float tn = a * s.spn + ae * fk_pick(neg, fk_excess(s.spn, s.pc), s.pc);
    float tp = a * s.spp + ae * fk_pick(neg, fk_excess(s.spp, s.p), s.p);
    float value = y * tn + ym * tp;
    if (want_grad) {
        /* d/ds of the terms: a + eps e^{-s}, written as (a + eps) + (-eps) (1 - e^{-s}) for eps < 0 */
        float sp = fk_pick(neg, a + ae * s.pc, at + eps * s.p);
        float sn = fk_pick(neg, a + ae * s.p, at + eps * s.pc);
        float dv = ym * s.p * sn - y * s.pc * sp;
        *grad = mod * (g * (1.0f - 2.0f * y) * r * value + dv);
    }
    return mod * value;
}

/* aux: per-element input of the loss (quality: row validity; varifocal: labels; poly1: alpha_t); NULL: absent. */
static inline __attribute__((always_inline)) void
fk_family_body(const int code, const int want_grad, const int has_aux, int n, const float *restrict x,
               const float *restrict y, const float *restrict aux, const float *restrict params, float glim,
               float *restrict loss, float *restrict grad) {
    const fk_params prm = {{params[0], params[1], params[2], params[3]}};
#pragma omp simd
    for (int i = 0; i < n; i++) {
        fk_logit s = fk_logistic(x[i]);
        float gi = 0.0f, li;
        switch (code) {
        case FK_QUALITY: li = fk_quality_elem(s, y[i], has_aux ? aux[i] : 1.0f, prm, glim, want_grad, &gi); break;
        case FK_VARIFOCAL:
            li = fk_varifocal_elem(s, y[i], has_aux ? aux[i] : (y[i] > 0.0f ? 1.0f : 0.0f), prm, want_grad, &gi);
            break;
        case FK_GAUSSIAN: li = fk_gaussian_elem(s, y[i], prm, want_grad, &gi); break;
        default: li = fk_poly1_elem(s, y[i], has_aux ? aux[i] : 1.0f, prm, want_grad, &gi); break;
        }
        loss[i] = li;
        if (want_grad) grad[i] = gi;
    }
}

/* One out-of-line function per (loss, gradient, aux) variant: each loop is vectorised on its own (inlined into one
 * switch, GCC leaves most of the twenty loops scalar). */
typedef void (*fk_family_fn)(int n, const float *restrict x, const float *restrict y, const float *restrict aux,
                             const float *restrict prm, float glim, float *restrict loss, float *restrict grad);
#define FK_FAM_DEFINE(L, WG, HA)                                                                                   \
    static __attribute__((noinline)) void fk_family_##L##_##WG##_##HA(                                            \
        int n, const float *restrict x, const float *restrict y, const float *restrict aux,                        \
        const float *restrict prm, float glim, float *restrict loss, float *restrict grad) {                       \
        fk_family_body(L, WG, HA, n, x, y, aux, prm, glim, loss, grad);                                            \
    }
#define FK_FAM_DEFINE_ALL(L) FK_FAM_DEFINE(L, 0, 0) FK_FAM_DEFINE(L, 0, 1) FK_FAM_DEFINE(L, 1, 0) FK_FAM_DEFINE(L, 1, 1)
FK_FAM_DEFINE_ALL(0) /* FK_QUALITY */
FK_FAM_DEFINE_ALL(1) /* FK_VARIFOCAL */
FK_FAM_DEFINE_ALL(2) /* FK_GAUSSIAN */
/* FK_ASYMMETRIC (3) has its own variants (fk_asymmetric_chunk) */
FK_FAM_DEFINE_ALL(4) /* FK_POLY1 */
#define FK_FAM_ROW(L) fk_family_##L##_0_0, fk_family_##L##_0_1, fk_family_##L##_1_0, fk_family_##L##_1_1
static const fk_family_fn fk_family_variants[5][4] = {{FK_FAM_ROW(0)}, {FK_FAM_ROW(1)}, {FK_FAM_ROW(2)},
                                                      {NULL, NULL, NULL, NULL}, {FK_FAM_ROW(4)}};

static void fk_family_chunk(int code, int n, const float *restrict x, const float *restrict y,
                            const float *restrict aux, const float *restrict prm, float glim, int want_grad, int binary,
                            float *restrict loss, float *restrict grad) {
    if (code < 0 || code > FK_POLY1) return;
    if (code == FK_ASYMMETRIC) {
        fk_asymmetric_chunk(n, x, y, prm, want_grad, binary, loss, grad);
        return;
    }
    fk_family_variants[code][(want_grad ? 2 : 0) + (aux ? 1 : 0)](n, x, y, aux, prm, glim, loss, grad);
}

/*
 * One loss of the logistic family over flat elements [start, end) of logits viewed as (N, C, S) contiguous.
 * code: FK_QUALITY .. FK_POLY1; prm: its scalar parameters (see the element functions above).
 * tdt: FK_F32/FK_F16/FK_BF16 (targets of the logits' shape) or FK_I64 (quality only: class indices (N, S),
 * C = background, ignore_index rows give 0). ep: the element argument or NULL: quality with index targets,
 * float32 scores (N, S) of the labelled class (NULL: 1); varifocal, labels of the logits' shape in dtype edt.
 * ap, an: per-class alpha (C,) of poly1 or NULL. loss_out, grad_out, block_sums: as fk_sigmoid_focal.
 * Returns the number of target values outside [0, 1] (or NaN), or of class indices outside [0, C] that are
 * not ignore_index.
 */
static int64_t fk_logistic_family_range(int code, const float *prm, const void *xp, int xdt, const void *tp, int tdt,
                                        const void *ep, int edt, const float *ap, const float *an,
                                        int64_t ignore_index, int has_ignore, int64_t C, int64_t S, int64_t start,
                                        int64_t end, float *loss_out, void *grad_out, double *block_sums) {
    float xbuf[FK_CHUNK], ybuf[FK_CHUNK], abuf[FK_CHUNK], lbuf[FK_CHUNK], gbuf[FK_CHUNK];
    const int want_grad = grad_out != NULL;
    const int64_t CS = C * S;
    const float glim = xdt == FK_F16 ? 65504.0f : (xdt == FK_BF16 ? 3.38953139e38f : FK_FLT_MAX);
    const float *scores = tdt == FK_I64 ? (const float *)ep : NULL;
    int64_t bad = 0;
    for (int64_t i0 = start; i0 < end; i0 += FK_CHUNK) {
        int n = (int)((end - i0) < FK_CHUNK ? (end - i0) : FK_CHUNK);
        const float *x = xbuf, *y = ybuf, *aux = NULL;
        int binary = 0; /* every float target of the chunk is exactly 0 or 1 */
        float *loss = loss_out ? loss_out + i0 : lbuf;
        float *grad = (want_grad && xdt == FK_F32) ? (float *)grad_out + i0 : gbuf;
        if (xdt == FK_F32) x = (const float *)xp + i0;
        else fk_load(xp, xdt, i0, n, xbuf);
        if (tdt == FK_I64) {
            /* dense quality targets y = score at the labelled class, validity 0 on ignored rows */
            const int64_t *t = (const int64_t *)tp;
            int64_t nn = i0 / CS, rem = i0 - nn * CS, c = rem / S, s = rem - c * S;
            int i = 0;
            while (i < n) {
                int len;
                if (S == 1) {
                    int64_t ti = t[nn];
                    len = (int)((C - c) < (n - i) ? (C - c) : (n - i));
                    int ign = has_ignore && ti == ignore_index;
                    if (c == 0 && !ign && (ti < 0 || ti > C)) bad++;
                    float sc = (ti >= c && ti < c + len) ? (scores ? scores[nn] : 1.0f) : 0.0f;
                    for (int j = 0; j < len; j++) ybuf[i + j] = (c + j == ti) ? sc : 0.0f;
                    for (int j = 0; j < len; j++) abuf[i + j] = ign ? 0.0f : 1.0f;
                    c += len;
                    if (c == C) { c = 0; nn++; }
                } else {
                    const int64_t *tr = t + nn * S + s;
                    const float *sr = scores ? scores + nn * S + s : NULL;
                    len = (int)((S - s) < (n - i) ? (S - s) : (n - i));
                    for (int j = 0; j < len; j++) ybuf[i + j] = (tr[j] == c) ? (sr ? sr[j] : 1.0f) : 0.0f;
                    for (int j = 0; j < len; j++) {
                        int ign = has_ignore && tr[j] == ignore_index;
                        abuf[i + j] = ign ? 0.0f : 1.0f;
                        if (c == 0) bad += (tr[j] < 0 || tr[j] > C) && !ign;
                    }
                    s += len;
                    if (s == S) { s = 0; if (++c == C) { c = 0; nn++; } }
                }
                i += len;
            }
            if (has_ignore) aux = abuf;
        } else {
            if (tdt == FK_F32) y = (const float *)tp + i0;
            else fk_load(tp, tdt, i0, n, ybuf);
            int nbad = 0, nb = 0;
#pragma omp simd reduction(+ : nbad, nb)
            for (int i = 0; i < n; i++) {
                nb += (y[i] != 0.0f) & (y[i] != 1.0f);
                nbad += !((y[i] >= 0.0f) & (y[i] <= 1.0f)); /* NaN counts as bad */
            }
            binary = nb == 0;
            bad += nbad;
            if (code == FK_VARIFOCAL && ep) {
                if (edt == FK_F32) aux = (const float *)ep + i0;
                else { fk_load(ep, edt, i0, n, abuf); aux = abuf; }
            } else if (code == FK_POLY1 && ap) {
                fk_alpha_t(i0, n, C, S, ap, an, y, abuf);
                aux = abuf;
            }
        }
        fk_family_chunk(code, n, x, y, aux, prm, glim, want_grad, binary, loss, grad);
        if (want_grad && xdt != FK_F32) fk_store(grad_out, xdt, i0, n, gbuf);
        if (block_sums) block_sums[i0 / FK_BLOCK] += fk_sum_chunk(n, loss);
    }
    return bad;
}

FK_EXPORT int64_t fk_logistic_family(int code, const float *prm, const void *xp, int xdt, const void *tp, int tdt,
                                     const void *ep, int edt, const float *ap, const float *an, int64_t ignore_index,
                                     int has_ignore, int64_t N, int64_t C, int64_t S, int64_t start, int64_t end,
                                     float *loss_out, void *grad_out, double *block_sums, int threads, int64_t piece) {
    (void)N;
    FK_PIECES(start, end, threads, piece,
              fk_logistic_family_range(code, prm, xp, xdt, tp, tdt, ep, edt, ap, an, ignore_index, has_ignore, C, S,
                                       s, e, loss_out, grad_out, block_sums));
}

/* ------------------------------------------------------------------------------------------------ */
/* Distribution focal loss (pytorch/distribution.py), per row (n, s) over the C = n + 1 bins along dim 1: */
/* y clamped to [0, n - 0.01], l = floor(y), r = l + 1, w_l = r - y, w_r = y - l; m = max_k x_k,          */
/* e_k = exp(x_k - m), log S = log1p(sum of e_k over k != argmax), log p_k = x_k - m - log S,             */
/* loss = -(w_l log p_l + w_r log p_r), grad_j = (w_l + w_r) p_j - w_l [j = l] - w_r [j = r].             */
/* A row with a non-finite logit gives NaN (as log_softmax does).                                          */

/*
 * Rows [start, end) of the N * S rows. tp: float targets (N, S) in dtype tdt. loss_out: per-row float32 or NULL.
 * grad_out: logits-shaped in dtype xdt or NULL. block_sums: block_sums[b] += losses of global row block
 * b = row / FK_BLOCK. scratch: C floats owned by the caller (one per thread). Returns the number of targets
 * outside [0, C - 1] or NaN.
 */
static int64_t fk_distribution_focal_range(const void *xp, int xdt, const void *tp, int tdt, int64_t C, int64_t S,
                                           int64_t start, int64_t end, float *loss_out, void *grad_out,
                                           double *block_sums, float *scratch) {
    const int want_grad = grad_out != NULL;
    const int64_t nb = C - 1;
    const float hi = (float)((double)nb - 0.01);
    const float lmax = (float)(nb - 1 > 0 ? nb - 1 : 0);
    const float nan = fk_asfloat(0x7fc00000);
    int64_t bad = 0;
    float *row = scratch, *ex = scratch + C; /* the row's logits, then exp(x_k - m) and the gradient */
    double block_acc = 0.0;
    for (int64_t r = start; r < end; r++) {
        int64_t n = r / S, s = r - n * S;
        float y;
        fk_load(tp, tdt, r, 1, &y);
        bad += !((y >= 0.0f) & (y <= (float)nb)); /* NaN counts as bad */
        if (S == 1) fk_load(xp, xdt, r * C, (int)C, row);
        else for (int64_t k = 0; k < C; k++) fk_load(xp, xdt, (n * C + k) * S + s, 1, row + k);
        float yc = y < 0.0f ? 0.0f : (y > hi ? hi : y); /* NaN stays NaN */
        float left = yc == yc ? floorf(yc) : 0.0f;
        left = left < 0.0f ? 0.0f : (left > lmax ? lmax : left);
        float wl = (left + 1.0f) - yc, wr = yc - left;
        int64_t il = (int64_t)left, ir = il + 1;
        float m = row[0];
        int64_t top = 0;
        int finite = 1;
        for (int64_t k = 0; k < C; k++) {
            float v = row[k];
            finite &= (v - v) == 0.0f; /* false for inf and NaN */
            if (v > m) { m = v; top = k; }
        }
        float others = 0.0f;
        for (int64_t k = 0; k < C; k++) {
            float ev = fk_exp_neg(row[k] - m);
            ex[k] = ev;
            others += k == top ? 0.0f : ev;
        }
        float ls = others <= 1.0f ? fk_log1p01(others) : fk_log(1.0f + others); /* log S, S = 1 + others */
        float li = -(wl * ((row[il] - m) - ls) + wr * ((row[ir] - m) - ls));
        li = finite ? li : nan;
        if (loss_out) loss_out[r] = li;
        if (block_sums) fk_row_sum(block_sums, r, end, (double)li, &block_acc);
        if (want_grad) {
            float w = wl + wr, inv = 1.0f / (1.0f + others);
            for (int64_t k = 0; k < C; k++) ex[k] = finite ? w * (ex[k] * inv) : nan;
            ex[il] -= wl;
            ex[ir] -= wr;
            if (S == 1) fk_store(grad_out, xdt, r * C, (int)C, ex);
            else for (int64_t k = 0; k < C; k++) fk_store(grad_out, xdt, (n * C + k) * S + s, 1, ex + k);
        }
    }
    return bad;
}

FK_EXPORT int64_t fk_distribution_focal(const void *xp, int xdt, const void *tp, int tdt, int64_t N, int64_t C,
                                        int64_t S, int64_t start, int64_t end, float *loss_out, void *grad_out,
                                        double *block_sums, float *scratch, int64_t scratch_stride, int threads,
                                        int64_t piece) {
    (void)N;
    FK_PIECES(start, end, threads, piece,
              fk_distribution_focal_range(xp, xdt, tp, tdt, C, S, s, e, loss_out, grad_out, block_sums,
                                          scratch + tid * scratch_stride));
}

/* The segmentation losses (Dice + focal, focal Tversky). */
#include "segmentation_cpu.c"
