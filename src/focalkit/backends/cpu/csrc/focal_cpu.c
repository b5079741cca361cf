/*
 * focalkit fused CPU kernels: sigmoid and softmax focal loss with their gradient in one pass.
 *
 * Plain C99 (plus GCC/Clang vector-friendly idioms), no dependency on Python or torch: the library is
 * loaded with ctypes and called on raw data pointers (see focalkit/backends/cpu/sigmoid.py and softmax.py).
 *
 * Numerics (docs/CONTRACT.md, "Kernel contract"): all math in float32; exp and log are written out
 * here as branch-free polynomials (Cephes-style range reduction) so that the compiler vectorises them
 * with `#pragma omp simd` without -ffast-math, and so that inf/NaN handling is under our control:
 *   fk_exp(x):  x <= 0 expected; results below 2^-126 are flushed to 0 (never NaN).
 *   fk_log1p01(e): log(1 + e) for e in [0, 1] via 2 atanh(e / (2 + e)); full relative accuracy for tiny e.
 *   fk_log(a):  a > 0 normal.
 * Threads: none here. The Python wrapper splits the flat element range over a thread pool (ctypes
 * releases the GIL), so the library needs no OpenMP runtime next to torch's own.
 * Sums are deterministic: per-element losses are summed in double per fixed block of FK_BLOCK elements
 * (aligned to the global flat index), the caller sums the block partials in order.
 */
#include <stdint.h>
#include <string.h>

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

/* exp(x) for x <= ~88; result flushed to 0 below 2^-126 (x < -87.33). */
static inline float fk_exp(float x) {
    x = x < -88.0f ? -88.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r) + r + 1.0f;
    int32_t ni = (int32_t)n;
    int32_t bits = (ni + 127) << 23;
    float scale = fk_asfloat(bits);
    float res = y * scale;
    return ni < -126 ? 0.0f : res;
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) in [0, 1/3]. */
static inline float fk_log1p01(float e) {
    float s = e / (2.0f + e);
    float s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    return 2.0f * s + 2.0f * s * s2 * p;
}

/* log(a) for a > 0 normal. */
static inline float fk_log(float a) {
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

static void fk_load(const void *src, int dt, int64_t off, int n, float *dst) {
    if (dt == FK_F32) { memcpy(dst, (const float *)src + off, (size_t)n * 4); return; }
    const uint16_t *h = (const uint16_t *)src + off;
    if (dt == FK_F16) { for (int i = 0; i < n; i++) dst[i] = fk_h2f(h[i]); }
    else { for (int i = 0; i < n; i++) dst[i] = fk_b2f(h[i]); }
}
static void fk_store(void *dst, int dt, int64_t off, int n, const float *src) {
    if (dt == FK_F32) { memcpy((float *)dst + off, src, (size_t)n * 4); return; }
    uint16_t *h = (uint16_t *)dst + off;
    if (dt == FK_F16) { for (int i = 0; i < n; i++) h[i] = fk_f2h(src[i]); }
    else { for (int i = 0; i < n; i++) h[i] = fk_f2b(src[i]); }
}

/* ------------------------------------------------------------------------------------------------ */
/* Sigmoid: math over one chunk of n <= FK_CHUNK elements held in float arrays.                      */
/* at: alpha_t, 0 for ignored elements (the loss and gradient are finite, so 0 * them is 0); NULL: 1. */
/* binary != 0: every y is exactly 0 or 1 (skips one log and one division).                           */
/* square != 0: gamma == 2, u^gamma = u * u (no exp).                                                 */
static inline __attribute__((always_inline)) void
fk_sigmoid_body(int n, const float *restrict x, const float *restrict y, const float *restrict at, float g,
                const int want_grad, const int binary, const int has_at, const int square, float *restrict loss,
                float *restrict grad) {
#pragma omp simd
    for (int i = 0; i < n; i++) {
        float xi = x[i], yi = y[i];
        float ax = xi < 0.0f ? -xi : xi;
        float e = fk_exp(-ax);
        float l = fk_log1p01(e);
        float q = 1.0f / (1.0f + e);
        float eq = e * q;
        int nonneg = xi >= 0.0f;
        float pm = nonneg ? q : eq;      /* p */
        float pc = nonneg ? eq : q;      /* 1 - p */
        float ym = 1.0f - yi;
        /* u = 1 - p_t = q * A, A = e * yc + ycomp */
        float yc = nonneg ? yi : ym;
        float ycomp = nonneg ? ym : yi;
        float ce = (nonneg ? xi * ym : -xi * yi) + l;
        float logu, r, u;
        if (binary) {
            int small = ycomp == 0.0f; /* target on the predicted side: u = e q */
            logu = small ? -ax - l : -l;
            r = small ? q : eq;
            u = small ? eq : q;
        } else {
            float A = e * yc + ycomp;
            int small = ycomp == 0.0f;
            float la0 = fk_log(small ? 1.0f : A);
            float la = small ? -ax : la0;
            logu = la - l;
            float rr = eq / (small ? 1.0f : A);
            r = small ? q : rr;
            u = q * A;
        }
        float ug = square ? u * u : fk_exp(g * logu);
        float w = has_at ? at[i] * ug : ug;
        loss[i] = w * ce;
        if (want_grad) {
            float dce = pm * ym - pc * yi;
            grad[i] = w * (dce + g * (1.0f - 2.0f * yi) * r * ce);
        }
    }
}

#define FK_SIG_CASE(WG, BI, HA, SQ) fk_sigmoid_body(n, x, y, at, g, WG, BI, HA, SQ, loss, grad)
static void fk_sigmoid_chunk(int n, const float *restrict x, const float *restrict y, const float *restrict at,
                             float g, int want_grad, int binary, float *restrict loss, float *restrict grad) {
    int code = (want_grad ? 8 : 0) | (binary ? 4 : 0) | (at ? 2 : 0) | (g == 2.0f ? 1 : 0);
    switch (code) {
    case 0: FK_SIG_CASE(0, 0, 0, 0); break;
    case 1: FK_SIG_CASE(0, 0, 0, 1); break;
    case 2: FK_SIG_CASE(0, 0, 1, 0); break;
    case 3: FK_SIG_CASE(0, 0, 1, 1); break;
    case 4: FK_SIG_CASE(0, 1, 0, 0); break;
    case 5: FK_SIG_CASE(0, 1, 0, 1); break;
    case 6: FK_SIG_CASE(0, 1, 1, 0); break;
    case 7: FK_SIG_CASE(0, 1, 1, 1); break;
    case 8: FK_SIG_CASE(1, 0, 0, 0); break;
    case 9: FK_SIG_CASE(1, 0, 0, 1); break;
    case 10: FK_SIG_CASE(1, 0, 1, 0); break;
    case 11: FK_SIG_CASE(1, 0, 1, 1); break;
    case 12: FK_SIG_CASE(1, 1, 0, 0); break;
    case 13: FK_SIG_CASE(1, 1, 0, 1); break;
    case 14: FK_SIG_CASE(1, 1, 1, 0); break;
    default: FK_SIG_CASE(1, 1, 1, 1); break;
    }
}

static double fk_sum_chunk(int n, const float *v) {
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += (double)v[i];
    return acc;
}

#ifndef FK_ABI_VERSION
#error "FK_ABI_VERSION must be defined by the build (setup.py reads it from focalkit/backends/cpu/abi.py)"
#endif
FK_EXPORT int fk_abi_version(void) { return FK_ABI_VERSION; }

/*
 * Sigmoid focal loss over flat elements [start, end) of logits viewed as (N, C, S) contiguous.
 * tdt: FK_F32/FK_F16/FK_BF16 (soft targets of the logits' shape) or FK_I64 (class indices, shape (N, S)).
 * ap, an: per-class alpha (C,) or NULL (weight 1). loss_out: per-element float32 or NULL.
 * grad_out: gradient in dtype xdt or NULL. block_sums: when not NULL, block_sums[b] += sum of losses of
 * global block b = flat_index / FK_BLOCK (start must then be a multiple of FK_BLOCK).
 */
FK_EXPORT int64_t fk_sigmoid_focal(const void *xp, int xdt, const void *tp, int tdt, const float *ap, const float *an,
                               float gamma, int64_t ignore_index, int has_ignore, int64_t N, int64_t C, int64_t S,
                               int64_t start, int64_t end, float *loss_out, void *grad_out, double *block_sums) {
    (void)N;
    float xbuf[FK_CHUNK], ybuf[FK_CHUNK], at[FK_CHUNK], lbuf[FK_CHUNK], gbuf[FK_CHUNK];
    const int want_grad = grad_out != NULL;
    const int64_t CS = C * S;
    const int has_at = ap != NULL || (tdt == FK_I64 && has_ignore);
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
        } else {
            if (tdt == FK_F32) y = (const float *)tp + i0;
            else fk_load(tp, tdt, i0, n, ybuf);
            int nb = 0, nbad = 0;
#pragma omp simd reduction(+ : nb, nbad)
            for (int i = 0; i < n; i++) {
                nb += (y[i] != 0.0f) & (y[i] != 1.0f);
                nbad += !((y[i] >= 0.0f) & (y[i] <= 1.0f)); /* NaN counts as bad */
            }
            binary = nb == 0;
            bad += nbad;
            if (ap) {
                /* segments of one row: class varying (S == 1, alpha contiguous) or fixed (S > 1) */
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
        }
        fk_sigmoid_chunk(n, x, y, has_at ? at : NULL, gamma, want_grad, binary, loss, grad);
        if (want_grad && xdt != FK_F32) fk_store(grad_out, xdt, i0, n, gbuf);
        if (block_sums) block_sums[i0 / FK_BLOCK] += fk_sum_chunk(n, loss);
    }
    return bad;
}

/* ------------------------------------------------------------------------------------------------ */
/* Softmax over the class dim of logits viewed as (N, C, S) contiguous, class-index targets (N, S).   */
/* For each (n, s) column: m = max_k x_k, ex_k = exp(x_k - m), S = sum ex, S' = sum_{k != t} ex,        */
/* u = S'/S, l = x_t - m - log S, p_t = ex_t / S, w = alpha[t] weight[t] u^g,                              */
/* loss = -w l, A = w (u - g p_t l), grad_t = -A, grad_j = A ex_j / S'.                                  */

static void fk_softmax_cols(int nc, int64_t C, int64_t S, const float *restrict xb /* C x nc, row stride nc */,
                            const int64_t *restrict t, const float *restrict wt /* C or NULL */, float g,
                            int64_t ignore_index, int has_ignore, int want_grad, float *restrict exb /* C x nc */,
                            float *restrict loss, float *restrict coef_out, float *restrict gt_out) {
    float m[FK_CHUNK], ssum[FK_CHUNK], sp[FK_CHUNK], xt[FK_CHUNK], wr[FK_CHUNK];
    int64_t tc[FK_CHUNK];
    (void)S;
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
        float *er = exb + k * nc;
#pragma omp simd
        for (int i = 0; i < nc; i++) {
            float ev = fk_exp(xr[i] - m[i]);
            er[i] = ev;
            ssum[i] += ev;
            sp[i] += (tc[i] == k) ? 0.0f : ev;
        }
    }
#pragma omp simd
    for (int i = 0; i < nc; i++) {
        float lS = fk_log(ssum[i]); /* S >= 1 */
        float ext = fk_exp(xt[i] - m[i]);
        /* log p_t: -log1p(S'/e_t) when p_t >= 1/2 (no cancellation), else x_t - m - log S */
        int big = sp[i] <= ext;
        float l = big ? -fk_log1p01(big ? sp[i] / ext : 0.0f) : xt[i] - m[i] - lS;
        int zero = sp[i] <= 0.0f;
        float lsp = fk_log(zero ? 1.0f : sp[i]);
        float logu = lsp - lS;
        float ug = zero ? (g == 0.0f ? 1.0f : 0.0f) : fk_exp(g * logu);
        float u = sp[i] / ssum[i];
        float pt = fk_exp(l);
        float w = wr[i] * ug;
        float li = -w * l;
        loss[i] = wr[i] != 0.0f ? li : 0.0f;
        float A = w * (u - g * pt * l);
        A = wr[i] != 0.0f ? A : 0.0f;
        coef_out[i] = zero ? 0.0f : A / (zero ? 1.0f : sp[i]);
        gt_out[i] = -A;
    }
    (void)want_grad;
}

/* Row-wise variant for S == 1 ((N, C) logits, rows contiguous): one row at a time, in L1. */
static float fk_softmax_row(int64_t C, const float *restrict xr, int64_t ti, float wr, float g, int want_grad,
                            float *restrict er) {
    float m = xr[0];
    for (int64_t k = 1; k < C; k++) m = xr[k] > m ? xr[k] : m;
    float ssum = 0.0f;
#pragma omp simd reduction(+ : ssum)
    for (int64_t k = 0; k < C; k++) {
        float ev = fk_exp(xr[k] - m);
        er[k] = ev;
        ssum += ev;
    }
    float ext = er[ti];
    float sp = 0.0f;
#pragma omp simd reduction(+ : sp)
    for (int64_t k = 0; k < C; k++) sp += (k == ti) ? 0.0f : er[k];
    float lS = fk_log(ssum);
    int big = sp <= ext; /* p_t >= 1/2: log p_t = -log1p(S'/e_t) without cancellation */
    float l = big ? -fk_log1p01(sp / ext) : xr[ti] - m - lS;
    int zero = sp <= 0.0f;
    float ug = zero ? (g == 0.0f ? 1.0f : 0.0f) : fk_exp(g * (fk_log(sp) - lS));
    float u = sp / ssum;
    float pt = ext / ssum;
    float w = wr * ug;
    float loss = -w * l;
    if (want_grad) {
        float A = w * (u - g * pt * l);
        float coef = zero ? 0.0f : A / sp;
#pragma omp simd
        for (int64_t k = 0; k < C; k++) er[k] *= coef;
        er[ti] = -A;
    }
    return loss;
}

/*
 * Softmax focal loss over columns [start, end) of the (N * S) flat columns. wt: combined per-class weight
 * alpha[c] * weight[c] (C,) or NULL. loss_out: per-column float32 (N, S) or NULL. grad_out: logits-shaped
 * in dtype xdt or NULL. block_sums: block_sums[b] += column losses of global column block b = col / FK_BLOCK.
 * scratch: 2 * C floats (S == 1) or 2 * C * FK_CHUNK floats (S > 1) owned by the caller (one per thread).
 */
FK_EXPORT int64_t fk_softmax_focal(const void *xp, int xdt, const int64_t *tp, const float *wt, float gamma,
                               int64_t ignore_index, int has_ignore, int64_t N, int64_t C, int64_t S, int64_t start,
                               int64_t end, float *loss_out, void *grad_out, double *block_sums, float *scratch) {
    (void)N;
    float loss[FK_CHUNK], coef[FK_CHUNK], gt[FK_CHUNK];
    int64_t tloc[FK_CHUNK];
    /* S == 1 uses 2 C floats of scratch (row, erow); S > 1 uses 2 C FK_CHUNK (xb, exb) */
    float *xb = scratch, *exb = scratch + C * FK_CHUNK, *row = scratch, *erow = scratch + C;
    const int want_grad = grad_out != NULL;
    int64_t bad = 0; /* class indices outside [0, C) that are not ignore_index */
    for (int64_t r = start; r < end; r++) bad += (tp[r] < 0 || tp[r] >= C) && !(has_ignore && tp[r] == ignore_index);
    if (S == 1) {
        for (int64_t r = start; r < end; r++) {
            int64_t ti = tp[r];
            int valid = ti >= 0 && ti < C && !(has_ignore && ti == ignore_index);
            float li = 0.0f;
            if (valid) {
                const float *xr;
                if (xdt == FK_F32) xr = (const float *)xp + r * C;
                else { fk_load(xp, xdt, r * C, (int)C, row); xr = row; }
                float wr = wt ? wt[ti] : 1.0f;
                li = fk_softmax_row(C, xr, ti, wr, gamma, want_grad, erow);
                if (wr == 0.0f) { li = 0.0f; }
                if (want_grad) {
                    if (wr == 0.0f) memset(erow, 0, (size_t)C * 4);
                    fk_store(grad_out, xdt, r * C, (int)C, erow);
                }
            } else if (want_grad) {
                memset(erow, 0, (size_t)C * 4);
                fk_store(grad_out, xdt, r * C, (int)C, erow);
            }
            if (loss_out) loss_out[r] = li;
            if (block_sums) block_sums[r / FK_BLOCK] += (double)li;
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
        fk_softmax_cols(nc, C, S, xb, tloc, wt, gamma, ignore_index, has_ignore, want_grad, exb, loss, coef, gt);
        if (loss_out) memcpy(loss_out + col, loss, (size_t)nc * 4);
        if (block_sums) block_sums[col / FK_BLOCK] += fk_sum_chunk(nc, loss);
        if (want_grad) {
            for (int64_t k = 0; k < C; k++) {
                float *er = exb + k * nc;
#pragma omp simd
                for (int i = 0; i < nc; i++) er[i] = (tloc[i] == k) ? gt[i] : er[i] * coef[i];
            }
            for (int64_t k = 0; k < C; k++) fk_store(grad_out, xdt, (n * C + k) * S + s, nc, exb + k * nc);
        }
        col += nc;
    }
    return bad;
}
