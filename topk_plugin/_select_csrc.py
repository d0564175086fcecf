"""C source of the CPU selection kernel (compiled on first use by ``_select_build``).

Kept as a string in a module so that it ships with the package without any
package-data configuration. One copy of the template is emitted per integer
key type (int16 for float16/bfloat16, int32 for float32, int64 for float64).

What the kernel computes, per row of ``L`` raw float bit patterns: the K-th
largest rank key ``t`` and a cutoff index ``c`` such that entry ``i`` is
selected iff ``key_i > t`` or (``key_i == t`` and ``i < c``); then it writes
the selected values (others ``+0.0``, i.e. all-zero bits) and/or the bool mask.
The keys are the total order of ``functional._rank_keys`` (every NaN ranks
highest and all NaNs tie, ``-0.0`` ties ``+0.0``), so the result is bit for bit
the one of the pure-PyTorch path.

How ``t`` is found, with ``G(v) = #(key > v)`` and the bracket invariant
``G(a) >= K > G(b)`` (so ``a < t <= b``):

1. a sorted stride sample of 32 keys gives two candidate thresholds around the
   expected K-th key; one pass counts ``G`` at both and finds the row's min and
   max key, which start the bracket as ``(min - 1, max]``;
2. while the bracket holds more than a few keys and ``b - a > 1``, one pass
   counts ``G`` at two thresholds placed by interpolating the counts (so they
   straddle the target rank), or at the midpoint when the last step did not
   halve the band (a bisection safeguard: at most 2 x key-bits rounds);
3. either ``b - a == 1`` (then ``t = b``, exact even with many ties) or the few
   keys in ``(a, b]`` are gathered and sorted.

Short rows (at most ``SHORT_<type>`` keys: 128, or 64 for float64) skip all of this:
each key's count ``#(key > key_i)`` is accumulated by an O(L^2) branch-free loop, and
``t`` is the smallest key whose count is below K (``short_threshold``); the tie cutoff
is the same. For 7x7 rows this is ~2.5x faster than sampling plus bracketing.

Every pass over the row is a branch-free counting loop the compiler vectorises;
the row stays in L1/L2 cache between passes, so the memory traffic is one read
of the input and one write of the output (plus the mask when asked).
"""

TEMPLATE = r"""
static inline T key_@S(T b, int by_abs, T inf, T mag) {
    T m = (T)(b & mag);
    if (by_abs) return m > inf ? (T)(inf + 1) : m;
    T v = b < 0 ? (T)(-m) : m;
    return m > inf ? mag : v;
}

/* G(v1) and G(v2) for one row */
static inline void count2_@S(const T* row, int64_t L, T v1, T v2, int by_abs, T inf, T mag,
                             int64_t* g1o, int64_t* g2o) {
    int64_t g1 = 0, g2 = 0;
    if (by_abs) {
        for (int64_t i = 0; i < L; i++) {
            T m = (T)(row[i] & mag);
            T k = m > inf ? (T)(inf + 1) : m;
            g1 += k > v1;
            g2 += k > v2;
        }
    } else {
        for (int64_t i = 0; i < L; i++) {
            T b = row[i];
            T m = (T)(b & mag);
            T k = b < 0 ? (T)(-m) : m;
            k = m > inf ? mag : k;
            g1 += k > v1;
            g2 += k > v2;
        }
    }
    *g1o = g1;
    *g2o = g2;
}

static inline void minmax_@S(const T* row, int64_t L, int by_abs, T inf, T mag, T* lo, T* hi) {
    T mn = key_@S(row[0], by_abs, inf, mag), mx = mn;
    for (int64_t i = 1; i < L; i++) {
        T k = key_@S(row[i], by_abs, inf, mag);
        mn = k < mn ? k : mn;
        mx = k > mx ? k : mx;
    }
    *lo = mn;
    *hi = mx;
}

/* Short rows (L <= SHORT_@S): rank by counting, O(L^2) but branch-free and vectorised.
   cnt[i] = #(key > key_i); t = min over i with cnt[i] < kk of key_i (kk >= 1, so the
   largest key, with cnt 0, always qualifies); then the same tie cutoff as below. */
static void short_threshold_@S(const T* row, int64_t L, int64_t kk, int exact, int by_abs, T inf, T mag,
                               T* t_out, int64_t* cut_out) {
    /* padded to a multiple of 16 so the inner loop has no scalar remainder; the padding
       (never read back) takes part in the counting only as targets, never as sources */
    T keys[SHORT_@S + 16];
    T cnt[SHORT_@S + 16]; /* counts <= 128 fit every key type */
    int64_t Lp = (L + 15) & ~(int64_t)15;
    for (int64_t i = 0; i < L; i++) keys[i] = key_@S(row[i], by_abs, inf, mag);
    for (int64_t i = L; i < Lp; i++) keys[i] = 0;
    for (int64_t i = 0; i < Lp; i++) cnt[i] = 0;
    for (int64_t j = 0; j < L; j++) {
        T kj = keys[j];
        for (int64_t i = 0; i < Lp; i += 16)
            for (int64_t u = 0; u < 16; u++) cnt[i + u] += (T)(kj > keys[i + u]);
    }
    T t = mag; /* the type's maximum: no key exceeds it */
    T kq = (T)kk;
    for (int64_t i = 0; i < L; i++) {
        T v = cnt[i] < kq ? keys[i] : mag;
        t = v < t ? v : t;
    }
    int64_t cut = L;
    if (exact) {
        int64_t gt_t = 0, eq_t = 0;
        for (int64_t i = 0; i < L; i++) { gt_t += keys[i] > t; eq_t += keys[i] == t; }
        int64_t missing = kk - gt_t, seen = 0;
        if (missing < eq_t) {
            for (int64_t i = 0; i < L; i++) {
                if (keys[i] == t && ++seen == missing) { cut = i + 1; break; }
            }
        }
    }
    *t_out = t;
    *cut_out = cut;
}

/* t and cutoff for one contiguous row; buf holds at least GATHER + 1 keys */
static void row_threshold_@S(const T* row, int64_t L, int64_t kk, int exact, int by_abs, T inf, T mag,
                             T* buf, T* t_out, int64_t* cut_out) {
    if (L <= SHORT_@S) {
        short_threshold_@S(row, L, kk, exact, by_abs, inf, mag, t_out, cut_out);
        return;
    }
    T sample[SAMPLE];
    int64_t S = L < SAMPLE ? L : SAMPLE;
    for (int64_t j = 0; j < S; j++) {
        T v = key_@S(row[(j * L) / S], by_abs, inf, mag);
        int64_t i = j - 1;
        while (i >= 0 && sample[i] > v) { sample[i + 1] = sample[i]; i--; }
        sample[i + 1] = v;
    }
    T rmin, rmax;
    minmax_@S(row, L, by_abs, inf, mag, &rmin, &rmax);
    T a, b;
    int64_t ga, gb;
    a = (T)(rmin - 1); /* keys never reach the type's minimum, so no wrap */
    b = rmax;
    ga = L;
    gb = 0;
    {
        double p = (double)kk / (double)L;
        int64_t d = (int64_t)(ZSCORE * sqrt((double)S * p * (1.0 - p))) + 1;
        double centre = (double)S - p * (double)S;
        int64_t lo_i = (int64_t)floor(centre) - d - 1, hi_i = (int64_t)ceil(centre) + d;
        if (lo_i < 0) lo_i = 0;
        if (hi_i > S - 1) hi_i = S - 1;
        T v1 = sample[lo_i], v2 = sample[hi_i];
        int64_t g1, g2;
        count2_@S(row, L, v1, v2, by_abs, inf, mag, &g1, &g2);
        if (g1 >= kk && v1 > a) { a = v1; ga = g1; }
        if (g2 >= kk && v2 > a) { a = v2; ga = g2; }
        if (g1 < kk && v1 < b) { b = v1; gb = g1; }
        if (g2 < kk && v2 < b) { b = v2; gb = g2; }
    }
    {
        int bisect = 0;
        double spread = 0.125;
        while (ga - gb > GATHER && (uint64_t)b - (uint64_t)a > 1) {
            int64_t band = ga - gb;
            uint64_t span = (uint64_t)b - (uint64_t)a;
            uint64_t o1, o2;
            if (bisect) {
                o1 = o2 = span / 2;
            } else {
                double delta = spread * (double)band + 1.0;
                double f1 = ((double)(ga - kk) + 0.5 - delta) / (double)band;
                double f2 = ((double)(ga - kk) + 0.5 + delta) / (double)band;
                f1 = f1 < 0.0 ? 0.0 : (f1 > 1.0 ? 1.0 : f1);
                f2 = f2 < 0.0 ? 0.0 : (f2 > 1.0 ? 1.0 : f2);
                o1 = (uint64_t)((double)span * f1);
                o2 = (uint64_t)((double)span * f2);
                if (o1 < 1) o1 = 1;
                if (o1 > span - 1) o1 = span - 1;
                if (o2 < 1) o2 = 1;
                if (o2 > span - 1) o2 = span - 1;
            }
            T v1 = (T)((uint64_t)a + o1), v2 = (T)((uint64_t)a + o2);
            int64_t g1, g2;
            count2_@S(row, L, v1, v2, by_abs, inf, mag, &g1, &g2);
            int straddle = (g1 >= kk) != (g2 >= kk);
            if (g1 >= kk && v1 > a) { a = v1; ga = g1; }
            if (g2 >= kk && v2 > a) { a = v2; ga = g2; }
            if (g1 < kk && v1 < b) { b = v1; gb = g1; }
            if (g2 < kk && v2 < b) { b = v2; gb = g2; }
            if (!bisect) spread = straddle ? spread * 0.5 : spread * 2.0;
            if (spread > 0.5) spread = 0.5;
            bisect = (ga - gb) * 2 > band;
        }
    }
    T t;
    int64_t gt_t, eq_t;
    if ((uint64_t)b - (uint64_t)a == 1) {
        t = b;
        gt_t = gb;
        eq_t = ga - gb;
    } else {
        int64_t m = 0;
        for (int64_t i = 0; i < L; i++) { /* at most GATHER keys lie in (a, b] */
            T k = key_@S(row[i], by_abs, inf, mag);
            buf[m] = k;
            m += (k > a) & (k <= b);
        }
        for (int64_t j = 1; j < m; j++) { /* insertion sort, ascending */
            T v = buf[j];
            int64_t i = j - 1;
            while (i >= 0 && buf[i] > v) { buf[i + 1] = buf[i]; i--; }
            buf[i + 1] = v;
        }
        t = buf[m - (kk - gb)];
        gt_t = gb;
        eq_t = 0;
        for (int64_t i = 0; i < m; i++) { gt_t += buf[i] > t; eq_t += buf[i] == t; }
    }
    int64_t cut = L;
    if (exact) {
        int64_t missing = kk - gt_t, seen = 0;
        if (missing < eq_t) {
            for (int64_t i = 0; i < L; i++) {
                if (key_@S(row[i], by_abs, inf, mag) == t && ++seen == missing) { cut = i + 1; break; }
            }
        }
    }
    *t_out = t;
    *cut_out = cut;
}

static inline void write_row_@S(const T* row, int64_t L, T t, int64_t cut, int by_abs, int invert, T inf, T mag,
                                T* out, uint8_t* mask) {
    /* split at the cutoff so both loops are branch-free */
    uint8_t inv = (uint8_t)(invert != 0);
    if (out && mask) {
        for (int64_t i = 0; i < cut; i++) {
            T b = row[i];
            uint8_t s = (uint8_t)(key_@S(b, by_abs, inf, mag) >= t) ^ inv;
            out[i] = s ? b : (T)0;
            mask[i] = s;
        }
        for (int64_t i = cut; i < L; i++) {
            T b = row[i];
            uint8_t s = (uint8_t)(key_@S(b, by_abs, inf, mag) > t) ^ inv;
            out[i] = s ? b : (T)0;
            mask[i] = s;
        }
    } else if (out) {
        for (int64_t i = 0; i < cut; i++) {
            T b = row[i];
            uint8_t s = (uint8_t)(key_@S(b, by_abs, inf, mag) >= t) ^ inv;
            out[i] = s ? b : (T)0;
        }
        for (int64_t i = cut; i < L; i++) {
            T b = row[i];
            uint8_t s = (uint8_t)(key_@S(b, by_abs, inf, mag) > t) ^ inv;
            out[i] = s ? b : (T)0;
        }
    } else {
        for (int64_t i = 0; i < cut; i++) mask[i] = (uint8_t)(key_@S(row[i], by_abs, inf, mag) >= t) ^ inv;
        for (int64_t i = cut; i < L; i++) mask[i] = (uint8_t)(key_@S(row[i], by_abs, inf, mag) > t) ^ inv;
    }
}

/* x: (R, L) rows contiguous. out / mask: same layout, either may be NULL. */
void topk_rows_@S(const T* x, int64_t R, int64_t L, int64_t kk, int exact, int by_abs, int invert,
                  T inf, T mag, T* out, uint8_t* mask, int nthreads) {
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1 && R > 1)
    {
        T buf[GATHER + 1];
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < R; r++) {
            T t;
            int64_t cut;
            const T* row = x + r * L;
            row_threshold_@S(row, L, kk, exact, by_abs, inf, mag, buf, &t, &cut);
            write_row_@S(row, L, t, cut, by_abs, invert, inf, mag, out ? out + r * L : 0, mask ? mask + r * L : 0);
        }
    }
}

/* x: (N, L, C) channel innermost (channels_last, tokens). out / mask alike, either may be NULL. */
void topk_cl_@S(const T* x, int64_t N, int64_t L, int64_t C, int64_t kk, int exact, int by_abs, int invert,
                T inf, T mag, T* out, uint8_t* mask, int nthreads) {
    int64_t nblocks = (C + CBLOCK - 1) / CBLOCK;
    int64_t jobs = N * nblocks;
    uint8_t inv = (uint8_t)(invert != 0);
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1 && jobs > 1)
    {
        T buf[GATHER + 1];
        T ts[CBLOCK];
        int64_t cuts[CBLOCK];
        T* block = (T*)malloc(sizeof(T) * (size_t)(CBLOCK * L));
        #pragma omp for schedule(static)
        for (int64_t job = 0; job < jobs; job++) {
            int64_t n = job / nblocks, c0 = (job % nblocks) * CBLOCK;
            int64_t nb = C - c0 < CBLOCK ? C - c0 : CBLOCK;
            const T* src = x + n * L * C;
            for (int64_t i = 0; i < L; i++)
                for (int64_t j = 0; j < nb; j++) block[j * L + i] = src[i * C + c0 + j];
            for (int64_t j = 0; j < nb; j++)
                row_threshold_@S(block + j * L, L, kk, exact, by_abs, inf, mag, buf, &ts[j], &cuts[j]);
            for (int64_t i = 0; i < L; i++) {
                for (int64_t j = 0; j < nb; j++) {
                    int64_t at = n * L * C + i * C + c0 + j;
                    T b = src[i * C + c0 + j];
                    T k = key_@S(b, by_abs, inf, mag);
                    uint8_t s = (uint8_t)((k > ts[j]) | ((k == ts[j]) & (i < cuts[j]))) ^ inv;
                    if (out) out[at] = s ? b : (T)0;
                    if (mask) mask[at] = s;
                }
            }
        }
        free(block);
    }
}
"""

HEADER = r"""
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#define SAMPLE 32
#define GATHER 8
#define ZSCORE 2.5
#define CBLOCK 16
/* rows up to SHORT_<type> keys take the O(L^2) rank-counting branch (its inner loop has
   16 / 8 / 4 lanes of int16 / int32 / int64 in 256-bit vectors, so the break-even differs) */
#define SHORT_i16 128
#define SHORT_i32 128
#define SHORT_i64 64
"""

KEY_TYPES = {"i16": "int16_t", "i32": "int32_t", "i64": "int64_t"}


def source() -> str:
    """The full C translation unit: the header plus one template copy per key type."""
    parts = [HEADER]
    for suffix, ctype in KEY_TYPES.items():
        parts.append(f"#define T {ctype}\n{TEMPLATE.replace('@S', suffix)}\n#undef T\n")
    return "\n".join(parts)
