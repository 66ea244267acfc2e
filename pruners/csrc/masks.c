/* sparsebench native CPU kernel of the mask enforcer (issue 10; pruners/enforce.py).
 *
 * Built on first use by pruners/native.py with the machine's C compiler, cached, and called through ctypes
 * on contiguous CPU tensors; the enforcer's eager twin (grad.mul_(float mask)) runs whenever this library
 * cannot be built or a tensor does not qualify.
 *
 * mask_grad: g[i] = g[i] * (bit i of the mask ? 1 : 0) -- the float-mask multiply, to the bit (-0 for a
 * negative gradient at a pruned entry, NaN stays NaN), with the mask read as packed bits (bit i of byte
 * i / 8, least significant first): 1/32 of the float mask's memory traffic, so the pass costs about the
 * gradient's read and write.  16 lanes with GCC / Clang vector extensions; every entry is independent, so
 * the result does not depend on the number of threads.
 */
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(64)));
typedef double vd __attribute__((vector_size(128)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef int64_t vl __attribute__((vector_size(128)));

#define PAR_MIN 32768   /* below this many entries one thread does the whole tensor */

static inline vi lane_bits(const uint8_t *bits, int64_t v) {   /* bits 16v .. 16v+15 as 0 / 1 lanes */
    uint16_t m;
    memcpy(&m, bits + 2 * v, sizeof m);
    const vi iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const vi mm = {m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m};
    return (mm >> iota) & 1;
}

static inline int bit_at(const uint8_t *bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

#define TO_VF(lanes) __builtin_convertvector((lanes), vf)
#define TO_VD(lanes) __builtin_convertvector(__builtin_convertvector((lanes), vl), vd)

#define DEFINE_MASK_GRAD(T, SUF, VT, TO_VT)                                                                \
void mask_grad_##SUF(T *restrict g, const uint8_t *restrict bits, int64_t n, int nthreads) {               \
    const int64_t nvec = n / 16;                                                                            \
    const int threads = n >= PAR_MIN && nthreads > 1 ? nthreads : 1;                                       \
    (void)threads;                                                                                          \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                                      \
    for (int64_t v = 0; v < nvec; ++v) {                                                                    \
        VT x;                                                                                               \
        memcpy(&x, g + 16 * v, sizeof x);                                                                   \
        x *= TO_VT(lane_bits(bits, v));                                                                     \
        memcpy(g + 16 * v, &x, sizeof x);                                                                   \
    }                                                                                                       \
    for (int64_t i = nvec * 16; i < n; ++i) g[i] *= (T)bit_at(bits, i);                                    \
}

DEFINE_MASK_GRAD(float, f32, vf, TO_VF)
DEFINE_MASK_GRAD(double, f64, vd, TO_VD)
