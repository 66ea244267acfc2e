/* sparsebench native CPU kernels (issue 10): one pass over memory where eager PyTorch needs several.
 *
 * Built on first use by reparam/native.py with the machine's C compiler, cached, and called through
 * ctypes on contiguous CPU tensors.  Every kernel has an eager PyTorch twin in the caller, used whenever
 * this library cannot be built or a tensor does not qualify; tests/reparam/test_native.py compares them.
 *
 * HAM (Jacobs et al., ICLR 2026, arXiv 2506.02630; PAPERS.md section 4), for each entry of a matrix:
 *     e     = -lr*beta + (-lr*alpha * sign(theta)) * g        (the eager addcmul's order)
 *     e     = clamp(e, -c, c)
 *     theta = theta * exp(e)
 * plus the sum of squares of the new theta (for the max-norm rescale): one read of theta and g and one
 * write of theta, where the eager version makes six passes (sign, addcmul, clamp, exp, mul, norm).
 * Blocks of 1024 entries whose exponents are provably within 1/16 (nearly all of them in training) use a
 * short exp polynomial without the clamp; see ham_block_f32.
 *
 * The float32 path is written with GCC / Clang vector extensions (16 lanes; the compiler maps them to
 * AVX-512 / AVX2 / SSE / NEON), so it does not depend on the auto-vectoriser.  The scalar tail of a
 * tensor runs the same operations lane by lane (with the compiler's FMA contraction it may round an ulp
 * differently from a vector lane); which entries form the tail depends only on the tensor's size.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
static inline int thread_num(void) { return omp_get_thread_num(); }
static inline int thread_count(void) { return omp_get_num_threads(); }
#else   /* built without OpenMP: one thread */
static inline int thread_num(void) { return 0; }
static inline int thread_count(void) { return 1; }
#endif

/* 16 lanes: one AVX-512 register, two AVX2 registers, four SSE / NEON registers */
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));

#define LANES 16
#define BLOCK 1024          /* entries per float partial sum of squares, added into a double */
#define PAR_MIN 32768       /* below this many entries one thread does the whole tensor */

static inline vf splat(float x) { return (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
static inline vi splat_i(int32_t x) { return (vi){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
static inline vf sel(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

/* exp for float32: Cody-Waite reduction x = n ln2 + r (|r| <= ln2/2), the degree-6 polynomial of
 * Cephes' expf (S. L. Moshier, Cephes Math Library, expf.c; the published coefficients), 2^n built in the
 * exponent bits.  Arguments are clamped to [-87, 87] (callers clamp to far less); NaN propagates.  The
 * error against float64 exp is measured in tests/reparam/test_native.py (under 1 ulp). */
static const float EXP_LOG2E = 1.44269504088896341f, EXP_C1 = 0.693359375f, EXP_C2 = -2.12194440e-4f;
static const float EXP_SHIFT = 12582912.0f;   /* 1.5 * 2^23: (y + S) - S rounds y to an integer */
static const float EXP_P[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

static inline vf exp_v_inrange(vf xc) {   /* |xc| <= 87; NaN gives NaN (y is NaN whatever the scale) */
    vf fn = (xc * splat(EXP_LOG2E) + splat(EXP_SHIFT)) - splat(EXP_SHIFT);
    vf r = xc - fn * splat(EXP_C1);
    r = r - fn * splat(EXP_C2);
    vf z = r * r;
    vf y = splat(EXP_P[0]);
    for (int k = 1; k < 6; ++k) y = y * r + splat(EXP_P[k]);
    y = y * z + r + splat(1.0f);
    vi n = __builtin_convertvector(fn, vi);
    vf scale = (vf)((n + 127) << 23);
    return y * scale;
}

static inline vf exp_v(vf x) {
    vf xc = sel(x < splat(-87.0f), splat(-87.0f), x);
    xc = sel(xc > splat(87.0f), splat(87.0f), xc);
    return sel(x == x, exp_v_inrange(xc), x);
}

static inline float exp_f32(float x) {   /* the same operations on one lane */
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 87.0f ? 87.0f : xc;
    float fn = (xc * EXP_LOG2E + EXP_SHIFT) - EXP_SHIFT;
    float r = xc - fn * EXP_C1;
    r = r - fn * EXP_C2;
    float z = r * r;
    float y = EXP_P[0];
    for (int k = 1; k < 6; ++k) y = y * r + EXP_P[k];
    y = y * z + r + 1.0f;
    int32_t bits = ((int32_t)fn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x == x ? y * scale : x;
}

static inline vf loadv(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf ham_v(vf th, vf g, float a, float b, float c) {
    vf one = splat(1.0f), zero = splat(0.0f);
    vf s = sel(th > zero, one, zero) - sel(th < zero, one, zero);
    vf e = splat(b) + (splat(a) * s) * g;
    e = sel(e < splat(-c), splat(-c), e);
    e = sel(e > splat(c), splat(c), e);          /* NaN stays NaN: both comparisons are false */
    /* callers guarantee 0 < c <= 80; a NaN exponent gives a NaN polynomial value, so NaN propagates */
    return th * exp_v_inrange(e);
}

/* exp on |x| <= 1/16: the Taylor polynomial 1 + x + x^2/2 + x^3/6 + x^4/24, whose remainder
 * x^5/120 e^|x| < 9e-9 is below a quarter ulp of float32 near 1 (2^-23 = 1.2e-7); no range reduction.
 * NaN gives NaN. */
#define EXP_SMALL 0.0625f
static inline vf exp_v_small(vf x) {
    vf y = splat(1.0f / 24.0f);
    y = y * x + splat(1.0f / 6.0f);
    y = y * x + splat(0.5f);
    y = y * x + splat(1.0f);
    return y * x + splat(1.0f);
}

/* HAM on a vector whose gradients are finite or NaN and whose exponents lie in [-1/16, 1/16] inside the
 * clamp (the block bound in ham_step_f32): no clamp, the short exp, and sign(theta) * g as g with theta's
 * sign bit xor-ed in.  That differs from sign(theta) * g only where theta = +-0, where the eager form gives
 * e = b and this one another finite e (or NaN for a NaN g, as the eager form): theta * exp(e) is the same
 * signed zero (or NaN) either way. */
static inline vf ham_v_small(vf th, vf g, float a, float b) {
    vf sg = (vf)((vi)g ^ ((vi)th & splat_i((int32_t)0x80000000u)));
    vf e = splat(b) + splat(a) * sg;
    return th * exp_v_small(e);
}

static inline float sign_f32(float th) { return (th > 0.0f ? 1.0f : 0.0f) - (th < 0.0f ? 1.0f : 0.0f); }

static inline float exp_f32_small(float x) {   /* exp_v_small on one lane */
    float y = 1.0f / 24.0f;
    y = y * x + 1.0f / 6.0f;
    y = y * x + 0.5f;
    y = y * x + 1.0f;
    return y * x + 1.0f;
}

static inline float ham_f32(float th, float g, float a, float b, float c) {
    float s = sign_f32(th);
    float e = b + (a * s) * g;
    e = e < -c ? -c : e;
    e = e > c ? c : e;
    return th * exp_f32(e);
}

/* HAM on one block of len <= BLOCK entries; returns the sum of squares of the new entries.
 * |e| <= |b| + |a| max|g| over the block (4 KB of g, read again from L1 below): when that bound is within
 * 1/16 and the clamp, the block takes the short exp and skips the clamp.  A NaN in g is ignored by the max
 * and propagates through either path.  The path is chosen per block, and blocks start at multiples of
 * BLOCK within each tensor, so the result does not depend on the number of threads. */
static double ham_block_f32(float *pt, const float *gt, int64_t len, float a, float b, float c) {
    const int64_t vec_end = len - len % LANES;
    /* max |g| on the bit patterns: for |g| (sign bit cleared) integer order is float order, and a NaN's
     * pattern is above infinity's, so a NaN makes the bound NaN and the block takes the full path */
    vi gmax = splat_i(0);
    for (int64_t i = 0; i < vec_end; i += LANES) {
        vi ag = (vi)loadv(gt + i) & splat_i(0x7fffffff);
        vi gt_mask = ag > gmax;
        gmax = (gt_mask & ag) | (~gt_mask & gmax);
    }
    int32_t mbits = 0;
    for (int l = 0; l < LANES; ++l) mbits = gmax[l] > mbits ? gmax[l] : mbits;
    float m;
    memcpy(&m, &mbits, sizeof m);
    for (int64_t i = vec_end; i < len; ++i) m = fabsf(gt[i]) > m || gt[i] != gt[i] ? fabsf(gt[i]) : m;
    const float bound = fabsf(b) + fabsf(a) * m;
    const int small = bound <= EXP_SMALL && bound * 1.0001f <= c;   /* margin: e rounds within an ulp */
    vf sq = splat(0.0f);
    if (small) {
        for (int64_t i = 0; i < vec_end; i += LANES) {
            vf r = ham_v_small(loadv(pt + i), loadv(gt + i), a, b);
            storev(pt + i, r);
            sq += r * r;
        }
    } else {
        for (int64_t i = 0; i < vec_end; i += LANES) {
            vf r = ham_v(loadv(pt + i), loadv(gt + i), a, b, c);
            storev(pt + i, r);
            sq += r * r;
        }
    }
    float part = 0.0f;
    for (int l = 0; l < LANES; ++l) part += sq[l];
    double acc = part;
    for (int64_t i = vec_end; i < len; ++i) {
        float r = small ? pt[i] * exp_f32_small(b + (a * sign_f32(pt[i])) * gt[i]) : ham_f32(pt[i], gt[i], a, b, c);
        pt[i] = r;
        acc += (double)r * (double)r;
    }
    return acc;
}

/* One HAM mirror step on k float32 tensors (a = -lr*alpha, b = -lr*beta, c = clamp > 0); sumsq[t]
 * receives the sum of squares of the new p[t].  All blocks of all tensors are split evenly over the
 * threads in one parallel region (one fork / join per step, small tensors shared too). */
void ham_step_f32(int64_t k, float **p, float *const *g, const int64_t *n, float a, float b, float c,
                  int nthreads, double *sumsq) {
    int64_t total_blocks = 0, total = 0;
    for (int64_t t = 0; t < k; ++t) {
        total_blocks += (n[t] + BLOCK - 1) / BLOCK;
        total += n[t];
        sumsq[t] = 0.0;
    }
    const int threads = total >= PAR_MIN && nthreads > 1 ? nthreads : 1;
    (void)threads;   /* unused without OpenMP */
    #pragma omp parallel num_threads(threads)
    {
        const int64_t tid = thread_num(), nth = thread_count();
        const int64_t lo = total_blocks * tid / nth, hi = total_blocks * (tid + 1) / nth;
        int64_t first = 0;   /* global index of tensor t's first block */
        for (int64_t t = 0; t < k && first < hi; ++t) {
            const int64_t nb = (n[t] + BLOCK - 1) / BLOCK;
            const int64_t b0 = lo > first ? lo - first : 0, b1 = hi - first < nb ? hi - first : nb;
            double acc = 0.0;
            for (int64_t j = b0; j < b1; ++j) {
                const int64_t start = j * BLOCK, len = n[t] - start < BLOCK ? n[t] - start : BLOCK;
                acc += ham_block_f32(p[t] + start, g[t] + start, len, a, b, c);
            }
            if (b1 > b0) {
                #pragma omp atomic
                sumsq[t] += acc;
            }
            first += nb;
        }
    }
}

/* The same in float64 with libm's exp (the float64 path serves tests and analysis, not speed). */
void ham_step_f64(int64_t k, double **p, double *const *g, const int64_t *n, double a, double b, double c,
                  int nthreads, double *sumsq) {
    for (int64_t t = 0; t < k; ++t) {
        double *pt = p[t];
        const double *gt = g[t];
        const int64_t len = n[t];
        double acc = 0.0;
        #pragma omp parallel for num_threads(nthreads) if(len >= PAR_MIN) schedule(static) reduction(+:acc)
        for (int64_t i = 0; i < len; ++i) {
            double th = pt[i];
            double s = (th > 0.0 ? 1.0 : 0.0) - (th < 0.0 ? 1.0 : 0.0);
            double e = b + (a * s) * gt[i];
            e = e < -c ? -c : e;
            e = e > c ? c : e;
            double r = th * exp(e);
            pt[i] = r;
            acc += r * r;
        }
        sumsq[t] = acc;
    }
}

/* exp_f32 over an array, vector lanes and scalar tail as in the kernels (for the accuracy test). */
void exp_f32_array(const float *x, float *out, int64_t len) {
    int64_t i = 0;
    for (; i + LANES <= len; i += LANES) storev(out + i, exp_v(loadv(x + i)));
    for (; i < len; ++i) out[i] = exp_f32(x[i]);
}

/* ------------------------------------------------------------------------------------------------
 * The factorised reparams theta = m * w (Sign-In, PILoT, spred; PAPERS.md sections 1-3) under torch's SGD.
 *
 * factor_grads: the backward of theta = m * w from theta's gradient G, gm = G * w and gw = G * m (the
 * products MulBackward0 computes; one rounding each, so bit-identical to it), in one pass.
 *
 * factor_sgd: torch.optim.SGD's step (torch/optim/sgd.py, _single_tensor_sgd) on both factors of every
 * pair, followed by theta = m * w for the next forward, in one pass.  Per entry of p in {m, w} with
 * gradient g and momentum buffer b:
 *     g = g + l2 * p            (PILoT's penalty 2 alpha_t p, added to the gradient; l2 = 0 otherwise)
 *     g = g + wd * p            (SGD's coupled weight decay)
 *     b = first ? g : b * mu + (1 - dampening) * g
 *     u = nesterov ? g + mu * b : b          (u = g without momentum)
 *     p = p - lr * u
 * Every "x + a * y" is one fused multiply-add where the CPU has one, as in ATen's vectorised add with
 * alpha (vec::fmadd), and b * mu is rounded on its own as buf.mul_(mu) is: on such a CPU the result is
 * the eager step's to the bit (tests/reparam/test_native.py compares them).  The blocks are split over
 * the threads as in ham_step_f32, and every entry is computed independently, so the result does not
 * depend on the number of threads.
 */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__)
#define FMA_F32(a, b, c) fmaf((a), (b), (c))
#define FMA_F64(a, b, c) fma((a), (b), (c))
#else
#define FMA_F32(a, b, c) ((a) * (b) + (c))
#define FMA_F64(a, b, c) ((a) * (b) + (c))
#endif

#define DEFINE_FACTOR_KERNELS(T, SUF, FMA)                                                                  \
void factor_grads_##SUF(int64_t n, const T *restrict G, const T *restrict m, const T *restrict w,          \
                        T *restrict gm, T *restrict gw, int nthreads) {                                    \
    const int threads = n >= PAR_MIN && nthreads > 1 ? nthreads : 1;                                       \
    (void)threads;                                                                                          \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                                      \
    for (int64_t blk = 0; blk < (n + BLOCK - 1) / BLOCK; ++blk) {                                          \
        const int64_t lo = blk * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;                               \
        for (int64_t i = lo; i < hi; ++i) {                                                                 \
            gm[i] = G[i] * w[i];                                                                            \
            gw[i] = G[i] * m[i];                                                                            \
        }                                                                                                   \
    }                                                                                                       \
}                                                                                                           \
                                                                                                            \
static inline void factor_sgd_range_##SUF(T *restrict p, const T *restrict g, T *restrict b, int64_t lo,   \
                                          int64_t hi, T lr, T mu, T damp1, T wd, T l2, int nesterov,       \
                                          int first) {                                                      \
    if (mu == 0) {                                                                                          \
        for (int64_t i = lo; i < hi; ++i) {                                                                 \
            T d = l2 != 0 ? FMA(p[i], l2, g[i]) : g[i];                                                     \
            d = wd != 0 ? FMA(p[i], wd, d) : d;                                                             \
            p[i] = FMA(d, lr, p[i]);                                                                        \
        }                                                                                                   \
    } else {   /* the loop-invariant first / nesterov tests are hoisted by the compiler */                  \
        for (int64_t i = lo; i < hi; ++i) {                                                                 \
            T d = l2 != 0 ? FMA(p[i], l2, g[i]) : g[i];                                                     \
            d = wd != 0 ? FMA(p[i], wd, d) : d;                                                             \
            const T nb = first ? d : FMA(d, damp1, b[i] * mu);                                              \
            b[i] = nb;                                                                                      \
            p[i] = FMA(nesterov ? FMA(nb, mu, d) : nb, lr, p[i]);                                           \
        }                                                                                                   \
    }                                                                                                       \
}                                                                                                           \
                                                                                                            \
/* k pairs; lr here is -lr and damp1 is 1 - dampening (as the eager step's alphas); bm / bw may be NULL   \
 * when mu = 0; first[t] says the pair's buffers are new (the eager step's clone of the first gradient).   \
 * With G != NULL the gradients are not given but computed per block from theta's gradient G[t] and the   \
 * factors before the step, gm = G * w and gw = G * m (into an L1-resident block buffer; gm / gw unused).  */ \
void factor_sgd_##SUF(int64_t k, T **m, T **w, T *const *gm, T *const *gw, T *const *G, T **bm, T **bw,    \
                      T **theta, const int64_t *n, const int32_t *first, T lr, T mu, T damp1, T wd, T l2,  \
                      int nesterov, int nthreads) {                                                         \
    int64_t total_blocks = 0, total = 0;                                                                    \
    for (int64_t t = 0; t < k; ++t) {                                                                       \
        total_blocks += (n[t] + BLOCK - 1) / BLOCK;                                                         \
        total += n[t];                                                                                      \
    }                                                                                                       \
    const int threads = total >= PAR_MIN && nthreads > 1 ? nthreads : 1;                                   \
    (void)threads;                                                                                          \
    _Pragma("omp parallel num_threads(threads)")                                                            \
    {                                                                                                       \
        T gmb[BLOCK], gwb[BLOCK];                                                                           \
        const int64_t tid = thread_num(), nth = thread_count();                                             \
        const int64_t lo = total_blocks * tid / nth, hi = total_blocks * (tid + 1) / nth;                   \
        int64_t firstblk = 0;                                                                               \
        for (int64_t t = 0; t < k && firstblk < hi; ++t) {                                                  \
            const int64_t nb = (n[t] + BLOCK - 1) / BLOCK;                                                  \
            const int64_t b0 = lo > firstblk ? lo - firstblk : 0, b1 = hi - firstblk < nb ? hi - firstblk : nb; \
            if (b1 > b0) {                                                                                  \
                const int64_t s = b0 * BLOCK, e = b1 * BLOCK < n[t] ? b1 * BLOCK : n[t];                    \
                T *restrict mt = m[t], *restrict wt = w[t], *restrict th = theta[t];                        \
                T *bmt = mu != 0 ? bm[t] : NULL, *bwt = mu != 0 ? bw[t] : NULL;                             \
                for (int64_t c = s; c < e; c += BLOCK) {   /* one block of both factors, then theta */      \
                    const int64_t len = c + BLOCK < e ? BLOCK : e - c;                                      \
                    const T *gmc, *gwc;                                                                     \
                    if (G != NULL) {                                                                        \
                        const T *restrict gt = G[t] + c;                                                    \
                        for (int64_t i = 0; i < len; ++i) {                                                 \
                            gmb[i] = gt[i] * wt[c + i];                                                     \
                            gwb[i] = gt[i] * mt[c + i];                                                     \
                        }                                                                                   \
                        gmc = gmb;                                                                          \
                        gwc = gwb;                                                                          \
                    } else {                                                                                \
                        gmc = gm[t] + c;                                                                    \
                        gwc = gw[t] + c;                                                                    \
                    }                                                                                       \
                    factor_sgd_range_##SUF(mt + c, gmc, bmt ? bmt + c : NULL, 0, len, lr, mu, damp1, wd, l2, \
                                           nesterov, first[t]);                                             \
                    factor_sgd_range_##SUF(wt + c, gwc, bwt ? bwt + c : NULL, 0, len, lr, mu, damp1, wd, l2, \
                                           nesterov, first[t]);                                             \
                    for (int64_t i = c; i < c + len; ++i) th[i] = mt[i] * wt[i];                            \
                }                                                                                           \
            }                                                                                               \
            firstblk += nb;                                                                                 \
        }                                                                                                   \
    }                                                                                                       \
}

DEFINE_FACTOR_KERNELS(float, f32, FMA_F32)
DEFINE_FACTOR_KERNELS(double, f64, FMA_F64)

/* 1 when the factor kernels were compiled with fused multiply-adds (then they match ATen's vectorised
 * CPU kernels to the bit), 0 otherwise. */
int factor_kernels_fma(void) {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}
