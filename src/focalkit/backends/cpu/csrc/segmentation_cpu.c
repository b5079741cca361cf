/*
 * focalkit fused CPU kernels for the segmentation losses (Dice + focal, focal Tversky): included at the end of
 * focal_cpu.c, so that it shares that file's vectorisable exp / log, the dtype loaders and the export macro.
 *
 * Logits are read in place as (N, C, S) (S = the product of the spatial sizes), p is the softmax over C (stride S)
 * or the sigmoid of each element, and 1 - p is formed without cancellation: sigmoid(-x) for the sigmoid; for the
 * softmax R / Sum at the (first) maximum, R the sum of the other classes' exponentials, and 1 - p elsewhere
 * (p <= 1/2 there). Targets are class indices (N, S) int64 with an ignore_index (g = [t == c], v = [t valid]) or
 * float32 one-hot / soft targets (N, C, S) (v = 1).
 *
 * Forward (fk_segmentation_stats): per (image, class) three double sums of per-pixel terms, picked by `mode`:
 *   FK_SEG_DICE          FP + FN = v (p (1 - g) + (1 - p) g),   v p,          g
 *   FK_SEG_DICE_SQUARED  v (p (1 - g) - (1 - p) g)^2,            v p^2,        g^2
 *   FK_SEG_TVERSKY       TP = v p g,   FN = v (1 - p) g,   FP = v p (1 - g)
 * plus, per image, the focal term's sum (softmax: -w_t (1 - p_t)^gamma log p_t per pixel of class t, w = alpha
 * weight; sigmoid: (w+_c g + w-_c (1 - g)) v (1 - p_t)^gamma BCE per element) and the number of valid pixels.
 * Backward (fk_segmentation_grad): given d L / d statistic (N, C, 3) and d L / d focal sum (N,), recomputes p and
 * writes d L / d x: d_c = d L / d p_c assembled from the statistics' gradients, then
 *   sigmoid: d_c p q;   softmax: p_k (d_k - sum_j p_j d_j), at the maximum as p_k sum_{j != k} p_j (d_k - d_j)
 * (no cancellation when p_k rounds to 1), plus the focal term's gradient (the formulas of fk_softmax_cols and
 * fk_sigmoid_body).
 *
 * Threads and determinism: pixels are visited through a virtual index n * Spad + s, Spad = S rounded up to FK_BLOCK,
 * so that every block of FK_BLOCK virtual pixels belongs to one image; a block writes its own partial sums
 * (C * 3 statistics, the focal sum, the valid count, the invalid-index count) and the caller adds the block
 * partials in order.
 * `extreme` counts valid pixels whose logit spread (softmax: max - min over C; sigmoid: |x|) exceeds
 * FK_SEG_EXTREME, where float32 probabilities may leave their accurate range (the caller decides what to do).
 */

#define FK_SEG_STATS 3
#define FK_SEG_EXTREME 50.0f

enum { FK_SEG_DICE = 0, FK_SEG_DICE_SQUARED = 1, FK_SEG_TVERSKY = 2 };

/* The three statistics' terms of one element (p, q = 1 - p, target g, valid v). */
static inline __attribute__((always_inline)) void fk_seg_terms(int mode, float p, float q, float g, float v,
                                                               float *a, float *b, float *c) {
    float neg = (1.0f - g) * v;
    if (mode == FK_SEG_DICE) {
        *a = p * neg + q * g;
        *b = p * v;
        *c = g;
    } else if (mode == FK_SEG_DICE_SQUARED) {
        float diff = p * neg - q * g;
        *a = diff * diff;
        *b = p * p * v;
        *c = g * g;
    } else {
        *a = p * g;
        *b = q * g;
        *c = p * neg;
    }
}

/* d L / d p of one element from the statistics' gradients d0, d1, d2. */
static inline __attribute__((always_inline)) float fk_seg_dp(int mode, float p, float q, float g, float v, float d0,
                                                             float d1, float d2) {
    float neg = (1.0f - g) * v;
    if (mode == FK_SEG_DICE) return d0 * (neg - g) + d1 * v;
    if (mode == FK_SEG_DICE_SQUARED) return 2.0f * (d0 * (p * neg - q * g) + d1 * p * v);
    return (d0 - d1) * g + d2 * neg;
}

/* Sigmoid of one element: p, q = 1 - p, and (with `focal`) the focal loss and its gradient factor. */
typedef struct {
    float p, q, loss, dloss; /* dloss: d (focal loss) / dx, the weight included */
} fk_seg_sig;

static inline __attribute__((always_inline)) fk_seg_sig fk_seg_sigmoid(float x, float y, float w, float gamma,
                                                                      const int focal) {
    fk_seg_sig r;
    float ax = x < 0.0f ? -x : x;
    float e = fk_exp_neg(-ax);
    float qq = 1.0f / (1.0f + e);
    float eq = e * qq;
    int nonneg = x >= 0.0f;
    r.p = nonneg ? qq : eq;
    r.q = nonneg ? eq : qq;
    r.loss = 0.0f;
    r.dloss = 0.0f;
    if (focal) {
        /* torchvision's p_t: 1 - p_t = p (1 - y) + q y = qq A, A = e yc + ycomp (see fk_sigmoid_body) */
        float l = fk_log1p01(e);
        float ym = 1.0f - y;
        float yc = nonneg ? y : ym, ycomp = nonneg ? ym : y;
        float ce = (nonneg ? x * ym : -x * y) + l;
        float A = e * yc + ycomp;
        int small = ycomp == 0.0f;
        float la = small ? -ax : fk_log(small ? 1.0f : A);
        float logu = la - l;
        float rr = small ? qq : eq / (small ? 1.0f : A);
        float ug = w * fk_exp(gamma * logu);
        r.loss = ug * ce;
        r.dloss = ug * ((r.p * ym - r.q * y) + gamma * (1.0f - 2.0f * y) * rr * ce);
    }
    return r;
}

/* Per-pixel softmax quantities of one chunk of nc pixels (C x nc logits in xb, row stride nc). */
typedef struct {
    float m[FK_CHUNK], sum[FK_CHUNK], rest[FK_CHUNK], other[FK_CHUNK], inv[FK_CHUNK], spread[FK_CHUNK];
    float xt[FK_CHUNK], et[FK_CHUNK]; /* the target class' logit and exponential (0 without a target class) */
    int32_t top[FK_CHUNK];
} fk_seg_soft;

/* m = max, top = its first index, eb = exp(x - m), sum, rest = sum of e over classes != top, other = sum over
 * classes != tv (the pixel's target class, -1 if none), inv = 1 / sum, spread = max - min. xb: row k of the chunk's
 * logits at xb + k * ld. */
static void fk_seg_softmax_chunk(int nc, int64_t C, const float *restrict xb, int64_t ld, const int32_t *restrict tv,
                                 float *restrict eb, fk_seg_soft *restrict w) {
    float m[FK_CHUNK], mn[FK_CHUNK], sum[FK_CHUNK], rest[FK_CHUNK], other[FK_CHUNK], xt[FK_CHUNK], et[FK_CHUNK];
    int32_t top[FK_CHUNK];
#pragma omp simd
    for (int i = 0; i < nc; i++) {
        m[i] = xb[i];
        mn[i] = xb[i];
        top[i] = 0;
        sum[i] = 0.0f;
        rest[i] = 0.0f;
        other[i] = 0.0f;
        xt[i] = 0.0f;
        et[i] = 0.0f;
    }
    for (int64_t k = 1; k < C; k++) {
        const float *xr = xb + k * ld;
        const int32_t kk = (int32_t)k;
#pragma omp simd
        for (int i = 0; i < nc; i++) {
            float v = xr[i], mi = m[i];
            int32_t up = -(int32_t)(v > mi); /* a bit-mask blend: an unconditional store, not a masked one */
            top[i] = (kk & up) | (top[i] & ~up);
            m[i] = v > mi ? v : mi;
            float lo = mn[i];
            mn[i] = v < lo ? v : lo;
        }
    }
    for (int64_t k = 0; k < C; k++) {
        const float *xr = xb + k * ld;
        float *er = eb + k * nc;
        const int32_t kk = (int32_t)k;
#pragma omp simd
        for (int i = 0; i < nc; i++) {
            float e = fk_exp_neg(xr[i] - m[i]);
            er[i] = e;
            sum[i] += e;
            rest[i] += top[i] == kk ? 0.0f : e;
            other[i] += tv[i] == kk ? 0.0f : e;
            /* gathers written as sums of one term (exact; an unconditional store, no masked one) */
            xt[i] += tv[i] == kk ? xr[i] : 0.0f;
            et[i] += tv[i] == kk ? e : 0.0f;
        }
    }
#pragma omp simd
    for (int i = 0; i < nc; i++) {
        w->m[i] = m[i];
        w->sum[i] = sum[i];
        w->rest[i] = rest[i];
        w->other[i] = other[i];
        w->top[i] = top[i];
        w->xt[i] = xt[i];
        w->et[i] = et[i];
        w->inv[i] = 1.0f / sum[i];
        w->spread[i] = m[i] - mn[i];
    }
}

/* Softmax focal term of the pixels of one chunk: loss (w_t (1 - p_t)^gamma (-log p_t)) and A (d loss / d x_t = -A,
 * d loss / d x_j = A e_j / other), as in fk_softmax_cols; 0 where tv < 0 or the class weight is 0. square: gamma
 * is 2 ((1 - p_t)^2 without exp / log). */
static inline __attribute__((always_inline)) void
fk_seg_softmax_focal_body(int nc, const float *restrict wr, float gamma, const fk_seg_soft *restrict w,
                          const int square, float *restrict loss, float *restrict coef, float *restrict at) {
#pragma omp simd
    for (int i = 0; i < nc; i++) {
        float sp = w->other[i], ext = w->et[i];
        int on = wr[i] != 0.0f;
        float lS = fk_log(w->sum[i]);
        int big = on & (sp <= ext); /* p_t >= 1/2: log p_t = -log1p(S'/e_t) without cancellation */
        float l = big ? -fk_log1p01(big ? sp / ext : 0.0f) : w->xt[i] - w->m[i] - lS;
        int zero = sp <= 0.0f;
        float u = sp * w->inv[i];
        float fg = square ? u * u
                          : (zero ? (gamma == 0.0f ? 1.0f : 0.0f) : fk_exp(gamma * (fk_log(zero ? 1.0f : sp) - lS)));
        float pt = ext * w->inv[i];
        float ww = wr[i] * fg;
        loss[i] = on ? -ww * l : 0.0f;
        float A = on ? ww * (u - gamma * pt * l) : 0.0f;
        coef[i] = zero ? 0.0f : A / (zero ? 1.0f : sp);
        at[i] = A;
    }
}

/* The focal term of one chunk (see fk_seg_softmax_focal_body); wt: per-class weights (C,) or NULL (1). */
static void fk_seg_softmax_focal(int nc, int64_t C, const int32_t *restrict tv, const float *restrict wt, float gamma,
                                 const fk_seg_soft *restrict w, float *restrict loss, float *restrict coef,
                                 float *restrict at) {
    float wr[FK_CHUNK];
#pragma omp simd
    for (int i = 0; i < nc; i++) wr[i] = 0.0f;
    for (int64_t k = 0; k < C; k++) {
        const int32_t kk = (int32_t)k;
        const float wk = wt ? wt[k] : 1.0f;
#pragma omp simd
        for (int i = 0; i < nc; i++) wr[i] += tv[i] == kk ? wk : 0.0f;
    }
    if (gamma == 2.0f)
        fk_seg_softmax_focal_body(nc, wr, gamma, w, 1, loss, coef, at);
    else
        fk_seg_softmax_focal_body(nc, wr, gamma, w, 0, loss, coef, at);
}

/* The chunk's logits as float32 rows (row k at the result + k * ld): read in place for float32, converted into
 * `buffer` (C x nc) otherwise. */
static const float *fk_seg_logits(const void *xp, int xdt, int64_t C, int64_t S, int64_t n, int64_t s, int nc,
                                  float *buffer, int64_t *ld) {
    if (xdt == FK_F32) {
        *ld = S;
        return (const float *)xp + n * C * S + s;
    }
    for (int64_t k = 0; k < C; k++) fk_load(xp, xdt, (n * C + k) * S + s, nc, buffer + k * nc);
    *ld = nc;
    return buffer;
}

/* sums[j] += the sum of the chunk's terms t_j (double, as fk_sum_chunk) */
static void fk_seg_add_sums(int nc, const float *t0, const float *t1, const float *t2, double *sums) {
    sums[0] += fk_sum_chunk(nc, t0);
    sums[1] += fk_sum_chunk(nc, t1);
    sums[2] += fk_sum_chunk(nc, t2);
}

/* The targets of one chunk: tv = the class index in [0, C) or -1, v = 1 for pixels that count (not ignored);
 * float targets (index == 0) give tv = -1 and v = 1. */
static void fk_seg_target_chunk(int nc, int index, const void *tp, int64_t C, int64_t S, int64_t n, int64_t s,
                                int64_t ignore_index, int has_ignore, int32_t *restrict tv, float *restrict v) {
    const int64_t *t = index ? (const int64_t *)tp + n * S + s : NULL;
    for (int i = 0; i < nc; i++) {
        int64_t ti = index ? t[i] : -1;
        int ign = index && has_ignore && ti == ignore_index;
        tv[i] = (!ign && ti >= 0 && ti < C) ? (int32_t)ti : -1;
        v[i] = ign ? 0.0f : 1.0f;
    }
}

/* The targets of class k over one chunk: float targets (N, C, S) read in place, or 0 / 1 from the chunk's class
 * indices tv (index != 0) written to ybuf. */
static inline const float *fk_seg_class_targets(int index, const void *tp, const int32_t *restrict tv, int64_t C,
                                                int64_t S, int64_t n, int64_t s, int64_t k, int nc,
                                                float *restrict ybuf) {
    if (!index) return (const float *)tp + (n * C + k) * S + s;
    const int32_t kk = (int32_t)k;
    for (int i = 0; i < nc; i++) ybuf[i] = tv[i] == kk ? 1.0f : 0.0f;
    return ybuf;
}

/* One chunk of nc pixels at image n, spatial offset s: statistics (stats[c * 3 + j] +=), focal sum, valid count
 * and extreme count. Inlined with a constant `mode` into fk_seg_stats_chunk's cases (vectorised per mode). */
static inline __attribute__((always_inline)) void
fk_seg_stats_chunk_mode(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index, int has_ignore,
                        int64_t C, int64_t S, int64_t n, int64_t s, int nc, int softmax, int mode, int focal,
                        const float *wpos, const float *wneg, float gamma, double *restrict stats,
                        double *restrict focal_sum, double *restrict count, int64_t *restrict extreme,
                        float *restrict scratch) {
    int32_t tv[FK_CHUNK];
    float vv[FK_CHUNK], ybuf[FK_CHUNK], t0[FK_CHUNK], t1[FK_CHUNK], t2[FK_CHUNK], fl[FK_CHUNK];
    const int index = tdt == FK_I64;
    if (nc < 1 || nc > FK_CHUNK) __builtin_unreachable(); /* the chunk loops give 1 <= nc <= FK_CHUNK */
    fk_seg_target_chunk(nc, index, tp, C, S, n, s, ignore_index, has_ignore, tv, vv);
    int32_t cnt = 0;
    for (int i = 0; i < nc; i++) cnt += vv[i] != 0.0f;
    *count += (double)cnt;
    float *eb = scratch + C * FK_CHUNK;
    int64_t ld;
    const float *xb = fk_seg_logits(xp, xdt, C, S, n, s, nc, scratch, &ld);
    if (softmax) {
        fk_seg_soft w;
        fk_seg_softmax_chunk(nc, C, xb, ld, tv, eb, &w);
        int32_t ext = 0;
        for (int i = 0; i < nc; i++) ext += (vv[i] != 0.0f) & !(w.spread[i] <= FK_SEG_EXTREME);
        *extreme += ext;
        for (int64_t k = 0; k < C; k++) {
            const float *er = eb + k * nc;
            const float *y = fk_seg_class_targets(index, tp, tv, C, S, n, s, k, nc, ybuf);
            const int32_t kk = (int32_t)k;
#pragma omp simd
            for (int i = 0; i < nc; i++) {
                float p = er[i] * w.inv[i];
                float q = w.top[i] == kk ? w.rest[i] * w.inv[i] : 1.0f - p;
                fk_seg_terms(mode, p, q, y[i], vv[i], t0 + i, t1 + i, t2 + i);
            }
            fk_seg_add_sums(nc, t0, t1, t2, stats + k * 3);
        }
        if (focal && index) {
            float loss[FK_CHUNK], coef[FK_CHUNK], at[FK_CHUNK];
            fk_seg_softmax_focal(nc, C, tv, wpos, gamma, &w, loss, coef, at);
            *focal_sum += fk_sum_chunk(nc, loss);
        }
        return;
    }
    int64_t ext = 0;
    double fsum = 0.0;
    for (int64_t k = 0; k < C; k++) {
        const float *x = xb + k * ld;
        const float *y = fk_seg_class_targets(index, tp, tv, C, S, n, s, k, nc, ybuf);
        const float wp = focal ? wpos[k] : 0.0f, wn = focal ? wneg[k] : 0.0f;
        if (focal) {
#pragma omp simd
            for (int i = 0; i < nc; i++) {
                float yi = y[i], vi = vv[i];
                fk_seg_sig r = fk_seg_sigmoid(x[i], yi, vi * (wp * yi + wn * (1.0f - yi)), gamma, 1);
                fk_seg_terms(mode, r.p, r.q, yi, vi, t0 + i, t1 + i, t2 + i);
                fl[i] = r.loss;
            }
            fsum += fk_sum_chunk(nc, fl);
        } else {
#pragma omp simd
            for (int i = 0; i < nc; i++) {
                float yi = y[i], vi = vv[i];
                fk_seg_sig r = fk_seg_sigmoid(x[i], yi, 0.0f, gamma, 0);
                fk_seg_terms(mode, r.p, r.q, yi, vi, t0 + i, t1 + i, t2 + i);
            }
        }
        fk_seg_add_sums(nc, t0, t1, t2, stats + k * 3);
        int32_t ex = 0;
        for (int i = 0; i < nc; i++) ex += (vv[i] != 0.0f) & !((x[i] <= FK_SEG_EXTREME) & (x[i] >= -FK_SEG_EXTREME));
        ext += ex;
    }
    *focal_sum += fsum;
    *extreme += ext;
}

#define FK_SEG_STATS_CALL(MODE)                                                                                    \
    fk_seg_stats_chunk_mode(xp, xdt, tp, tdt, ignore_index, has_ignore, C, S, n, s, nc, softmax, MODE, focal, wpos,  \
                            wneg, gamma, stats, focal_sum, count, extreme, scratch)
static void fk_seg_stats_chunk(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index,
                               int has_ignore, int64_t C, int64_t S, int64_t n, int64_t s, int nc, int softmax,
                               int mode, int focal, const float *wpos, const float *wneg, float gamma,
                               double *restrict stats, double *restrict focal_sum, double *restrict count,
                               int64_t *restrict extreme, float *restrict scratch) {
    switch (mode) {
    case FK_SEG_DICE: FK_SEG_STATS_CALL(FK_SEG_DICE); break;
    case FK_SEG_DICE_SQUARED: FK_SEG_STATS_CALL(FK_SEG_DICE_SQUARED); break;
    default: FK_SEG_STATS_CALL(FK_SEG_TVERSKY); break;
    }
}

/* The chunks of virtual pixels [start, end) (index n * Spad + s, start and end multiples of FK_BLOCK). */
#define FK_SEG_FOR_CHUNKS(BODY)                                                                                    \
    for (int64_t b0 = start; b0 < end; b0 += FK_BLOCK) {                                                           \
        const int64_t n = b0 / Spad, sb = b0 - n * Spad;                                                           \
        const int64_t s_end = (sb + FK_BLOCK) < S ? (sb + FK_BLOCK) : S;                                            \
        const int64_t block = b0 / FK_BLOCK;                                                                        \
        (void)block;                                                                                               \
        for (int64_t s = sb; s < s_end; s += FK_CHUNK) {                                                           \
            const int nc = (int)((s_end - s) < FK_CHUNK ? (s_end - s) : FK_CHUNK);                                 \
            BODY                                                                                                   \
        }                                                                                                          \
    }

/*
 * Forward: per block b of virtual pixels [start, end) writes partials[b * (3 C + 3) + ...]: the 3 C statistics
 * (class-major), the focal sum, the number of valid pixels and the number of invalid class indices (outside [0, C),
 * not ignore_index; the caller zeroes `partials`). Returns the number of
 * extreme pixels. tdt: FK_I64 (class indices (N, S)) or FK_F32 (targets (N, C, S)). focal: 0 (off) or 1; wpos:
 * softmax: w_c = alpha_c weight_c (C,) or NULL; sigmoid: w+_c, with wneg w-_c (both (C,)). scratch: 2 C FK_CHUNK
 * floats owned by the caller (one per thread).
 */
static int64_t fk_segmentation_stats_range(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index,
                                           int has_ignore, int64_t C, int64_t S, int64_t Spad, int softmax, int mode,
                                           int focal, const float *wpos, const float *wneg, float gamma,
                                           int64_t start, int64_t end, double *partials, float *scratch) {
    int64_t extreme = 0;
    const int64_t stride = FK_SEG_STATS * C + 3;
    FK_SEG_FOR_CHUNKS({
        double *part = partials + block * stride;
        fk_seg_stats_chunk(xp, xdt, tp, tdt, ignore_index, has_ignore, C, S, n, s, nc, softmax, mode, focal, wpos,
                           wneg, gamma, part, part + FK_SEG_STATS * C, part + FK_SEG_STATS * C + 1, &extreme,
                           scratch);
        if (tdt == FK_I64) { /* class indices outside [0, C) that are not ignore_index, counted in the same pass */
            const int64_t *t = (const int64_t *)tp + n * S + s;
            int64_t bad = 0;
            for (int i = 0; i < nc; i++) bad += (t[i] < 0 || t[i] >= C) && !(has_ignore && t[i] == ignore_index);
            part[FK_SEG_STATS * C + 2] += (double)bad;
        }
    })
    return extreme;
}

/* Backward of one chunk: writes d L / d x of its C x nc logits (inlined per mode, as the forward). */
static inline __attribute__((always_inline)) void
fk_seg_grad_chunk_mode(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index, int has_ignore,
                       int64_t C, int64_t S, int64_t n, int64_t s, int nc, int softmax, int mode, int focal,
                       const float *wpos, const float *wneg, float gamma, const float *restrict dstat, float dfocal,
                       void *grad_out, float *restrict scratch) {
    int32_t tv[FK_CHUNK];
    float vv[FK_CHUNK], ybuf[FK_CHUNK];
    const int index = tdt == FK_I64;
    if (nc < 1 || nc > FK_CHUNK) __builtin_unreachable(); /* the chunk loops give 1 <= nc <= FK_CHUNK */
    fk_seg_target_chunk(nc, index, tp, C, S, n, s, ignore_index, has_ignore, tv, vv);
    float *eb = scratch + C * FK_CHUNK, *db = scratch + 2 * C * FK_CHUNK;
    int64_t ld;
    const float *xb = fk_seg_logits(xp, xdt, C, S, n, s, nc, scratch, &ld);
    const int direct = xdt == FK_F32; /* write the gradient in place */
    if (!softmax) {
        for (int64_t k = 0; k < C; k++) {
            const float *x = xb + k * ld;
            float *gr = direct ? (float *)grad_out + (n * C + k) * S + s : db + k * nc;
            const float *y = fk_seg_class_targets(index, tp, tv, C, S, n, s, k, nc, ybuf);
            const float d0 = dstat[k * 3], d1 = dstat[k * 3 + 1], d2 = dstat[k * 3 + 2];
            if (focal) {
                const float wp = wpos[k] * dfocal, wn = wneg[k] * dfocal;
#pragma omp simd
                for (int i = 0; i < nc; i++) {
                    float yi = y[i], vi = vv[i];
                    fk_seg_sig r = fk_seg_sigmoid(x[i], yi, vi * (wp * yi + wn * (1.0f - yi)), gamma, 1);
                    gr[i] = fk_seg_dp(mode, r.p, r.q, yi, vi, d0, d1, d2) * (r.p * r.q) + r.dloss;
                }
            } else {
#pragma omp simd
                for (int i = 0; i < nc; i++) {
                    float yi = y[i], vi = vv[i];
                    fk_seg_sig r = fk_seg_sigmoid(x[i], yi, 0.0f, gamma, 0);
                    gr[i] = fk_seg_dp(mode, r.p, r.q, yi, vi, d0, d1, d2) * (r.p * r.q);
                }
            }
            if (!direct) fk_store(grad_out, xdt, (n * C + k) * S + s, nc, gr);
        }
        return;
    }
    fk_seg_soft w;
    fk_seg_softmax_chunk(nc, C, xb, ld, tv, eb, &w);
    float dot[FK_CHUNK], dtop[FK_CHUNK], at_top[FK_CHUNK];
#pragma omp simd
    for (int i = 0; i < nc; i++) { dot[i] = 0.0f; dtop[i] = 0.0f; at_top[i] = 0.0f; }
    /* d_k = d L / d p_k; dot = sum_k e_k d_k; dtop = d at the maximum (a gather written as a sum of one term) */
    for (int64_t k = 0; k < C; k++) {
        const float *er = eb + k * nc;
        float *dr = db + k * nc;
        const float *y = fk_seg_class_targets(index, tp, tv, C, S, n, s, k, nc, ybuf);
        const int32_t kk = (int32_t)k;
        const float d0 = dstat[k * 3], d1 = dstat[k * 3 + 1], d2 = dstat[k * 3 + 2];
#pragma omp simd
        for (int i = 0; i < nc; i++) {
            float p = er[i] * w.inv[i];
            float q = w.top[i] == kk ? w.rest[i] * w.inv[i] : 1.0f - p;
            float d = fk_seg_dp(mode, p, q, y[i], vv[i], d0, d1, d2);
            dr[i] = d;
            dot[i] += er[i] * d;
            dtop[i] += w.top[i] == kk ? d : 0.0f;
        }
    }
    /* at the maximum: at_top = sum_{j != top} e_j (d_top - d_j), so that d_top - dot / Sum = at_top / Sum */
    for (int64_t k = 0; k < C; k++) {
        const float *er = eb + k * nc, *dr = db + k * nc;
        const int32_t kk = (int32_t)k;
#pragma omp simd
        for (int i = 0; i < nc; i++) at_top[i] += w.top[i] == kk ? 0.0f : er[i] * (dtop[i] - dr[i]);
    }
    float coef[FK_CHUNK], at[FK_CHUNK];
    if (focal && index) {
        float loss[FK_CHUNK];
        fk_seg_softmax_focal(nc, C, tv, wpos, gamma, &w, loss, coef, at);
        for (int i = 0; i < nc; i++) { coef[i] *= dfocal; at[i] *= dfocal; }
    } else {
        for (int i = 0; i < nc; i++) { coef[i] = 0.0f; at[i] = 0.0f; }
    }
    for (int64_t k = 0; k < C; k++) {
        const float *er = eb + k * nc;
        float *dr = db + k * nc;
        float *gr = direct ? (float *)grad_out + (n * C + k) * S + s : dr;
        const int32_t kk = (int32_t)k;
#pragma omp simd
        for (int i = 0; i < nc; i++) {
            float p = er[i] * w.inv[i];
            float g = w.top[i] == kk ? p * at_top[i] * w.inv[i] : p * (dr[i] - dot[i] * w.inv[i]);
            gr[i] = g + (tv[i] == kk ? -at[i] : coef[i] * er[i]);
        }
        if (!direct) fk_store(grad_out, xdt, (n * C + k) * S + s, nc, dr);
    }
}

#define FK_SEG_GRAD_CALL(MODE)                                                                                     \
    fk_seg_grad_chunk_mode(xp, xdt, tp, tdt, ignore_index, has_ignore, C, S, n, s, nc, softmax, MODE, focal, wpos,   \
                           wneg, gamma, dstat, dfocal, grad_out, scratch)
static void fk_seg_grad_chunk(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index, int has_ignore,
                              int64_t C, int64_t S, int64_t n, int64_t s, int nc, int softmax, int mode, int focal,
                              const float *wpos, const float *wneg, float gamma, const float *restrict dstat,
                              float dfocal, void *grad_out, float *restrict scratch) {
    switch (mode) {
    case FK_SEG_DICE: FK_SEG_GRAD_CALL(FK_SEG_DICE); break;
    case FK_SEG_DICE_SQUARED: FK_SEG_GRAD_CALL(FK_SEG_DICE_SQUARED); break;
    default: FK_SEG_GRAD_CALL(FK_SEG_TVERSKY); break;
    }
}

/*
 * Backward: writes d L / d x (dtype xdt, the logits' shape) for the virtual pixels [start, end), from dstat
 * (N, C, 3) float32 (d L / d statistic) and dfocal (N,) float32 (d L / d focal sum of each image; NULL with
 * focal = 0). Other arguments as in fk_segmentation_stats; scratch: 3 C FK_CHUNK floats. Returns 0.
 */
static int64_t fk_segmentation_grad_range(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index,
                                          int has_ignore, int64_t C, int64_t S, int64_t Spad, int softmax, int mode,
                                          int focal, const float *wpos, const float *wneg, float gamma,
                                          const float *dstat, const float *dfocal, int64_t start, int64_t end,
                                          void *grad_out, float *scratch) {
    FK_SEG_FOR_CHUNKS({
        fk_seg_grad_chunk(xp, xdt, tp, tdt, ignore_index, has_ignore, C, S, n, s, nc, softmax, mode, focal, wpos,
                          wneg, gamma, dstat + n * FK_SEG_STATS * C, focal ? dfocal[n] : 0.0f, grad_out, scratch);
    })
    return 0;
}

/* The exported kernels: [start, end) in pieces on `threads` threads (FK_PIECES); scratch: scratch_stride floats per
 * thread. */
FK_EXPORT int64_t fk_segmentation_stats(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index,
                                        int has_ignore, int64_t N, int64_t C, int64_t S, int64_t Spad, int softmax,
                                        int mode, int focal, const float *wpos, const float *wneg, float gamma,
                                        int64_t start, int64_t end, double *partials, float *scratch,
                                        int64_t scratch_stride, int threads, int64_t piece) {
    (void)N;
    FK_PIECES(start, end, threads, piece,
              fk_segmentation_stats_range(xp, xdt, tp, tdt, ignore_index, has_ignore, C, S, Spad, softmax, mode, focal,
                                          wpos, wneg, gamma, s, e, partials, scratch + tid * scratch_stride));
}

FK_EXPORT int64_t fk_segmentation_grad(const void *xp, int xdt, const void *tp, int tdt, int64_t ignore_index,
                                       int has_ignore, int64_t N, int64_t C, int64_t S, int64_t Spad, int softmax,
                                       int mode, int focal, const float *wpos, const float *wneg, float gamma,
                                       const float *dstat, const float *dfocal, int64_t start, int64_t end,
                                       void *grad_out, float *scratch, int64_t scratch_stride, int threads,
                                       int64_t piece) {
    (void)N;
    FK_PIECES(start, end, threads, piece,
              fk_segmentation_grad_range(xp, xdt, tp, tdt, ignore_index, has_ignore, C, S, Spad, softmax, mode, focal,
                                         wpos, wneg, gamma, dstat, dfocal, s, e, grad_out,
                                         scratch + tid * scratch_stride));
}
