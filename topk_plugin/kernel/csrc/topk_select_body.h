/* The kernel body for one key type, included by topk_select.c once per type with T (the
   signed key), U (its unsigned twin), S (the name suffix), SHORT_LEN and SHORT_LANES defined.
   FN(name) is name_S. No include guard: that is the point; the parameters are undefined at
   the end, so each inclusion states its own. */
static inline T FN(key)(T b, int by_abs, T inf, T mag) {
    T m = (T)(b & mag);
    if (by_abs) return m > inf ? (T)(inf + 1) : m;
    T v = b < 0 ? (T)(-m) : m;
    return m > inf ? mag : v;
}

/* The keys of one row into kb, padded with the type's minimum up to PAD(L) (no threshold
   counts the padding and no bracket holds it), fused with the row's min and max key and G at
   the NTH (= 4) thresholds v[]. This is the one pass that streams the row from memory, so the
   extra counting costs little. All loops here are plain reductions over restrict pointers,
   which compilers vectorise with the accumulators in registers; the counts accumulate in the
   key type (full-width vectors even for int16) and are flushed every CHUNK keys so that they
   cannot overflow. */
#define KEYS_PASS_BODY(KEY)                                                                   \
    for (int64_t c0 = 0; c0 < L; c0 += CHUNK) {                                               \
        int64_t c1 = c0 + CHUNK < L ? c0 + CHUNK : L;                                         \
        T a0 = 0, a1 = 0, a2 = 0, a3 = 0, cmn = mn, cmx = mx;                                 \
        for (int64_t i = c0; i < c1; i++) {                                                   \
            T k = KEY;                                                                        \
            kb[i] = k;                                                                        \
            cmn = k < cmn ? k : cmn;                                                          \
            cmx = k > cmx ? k : cmx;                                                          \
            a0 += (T)(k > v0); a1 += (T)(k > v1); a2 += (T)(k > v2); a3 += (T)(k > v3);      \
        }                                                                                     \
        g[0] += a0; g[1] += a1; g[2] += a2; g[3] += a3;                                       \
        mn = cmn;                                                                             \
        mx = cmx;                                                                             \
    }
static void FN(keys_pass)(const T* restrict row, int64_t L, int by_abs, T inf, T mag, const T* v,
                         T* restrict kb, T* lo, T* hi, int64_t* g) {
    T v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
    T mn = mag, mx = (T)(-mag - 1), inf1 = (T)(inf + 1);
    for (int j = 0; j < NTH; j++) g[j] = 0;
    if (by_abs) {
        KEYS_PASS_BODY(((T)(row[i] & mag) > inf ? inf1 : (T)(row[i] & mag)))
    } else {
        KEYS_PASS_BODY(((T)(row[i] & mag) > inf ? mag : (row[i] < 0 ? (T)(-(T)(row[i] & mag)) : (T)(row[i] & mag))))
    }
    for (int64_t i = L; i < PAD(L); i++) kb[i] = (T)(-mag - 1);
    *lo = mn;
    *hi = mx;
}
#undef KEYS_PASS_BODY

/* G(v1) and G(v2) over a key buffer */
static void FN(count2)(const T* restrict kb, int64_t L, T v1, T v2, int64_t* g1o, int64_t* g2o) {
    int64_t g1 = 0, g2 = 0;
    for (int64_t c0 = 0; c0 < L; c0 += CHUNK) {
        int64_t c1 = c0 + CHUNK < L ? c0 + CHUNK : L;
        T a1 = 0, a2 = 0;
        for (int64_t i = c0; i < c1; i++) {
            T k = kb[i];
            a1 += (T)(k > v1);
            a2 += (T)(k > v2);
        }
        g1 += a1;
        g2 += a2;
    }
    *g1o = g1;
    *g2o = g2;
}

/* The keys in (a, b] into buf, ascending; returns how many (callers guarantee at most GATHER
   keys in the band, and kb is padded to a multiple of BLOCK). With GCC/Clang vector extensions
   one pass keeps, in registers, the three largest in-band keys of every lane (position mod
   4 vector widths: four independent accumulator sets, so the max chains overlap) and how many
   each lane saw; only if a lane saw four or more does a scalar pass gather them instead
   (rare with 64-byte vectors, where the band's keys spread over 32-128 lanes; with 16-byte
   vectors there are only 8-32 lanes, so it runs more often, which is one reason the
   backend choice measures each build); without vector extensions the scalar pass is the
   only one. */
static int64_t FN(gather_band)(const T* restrict kb, int64_t Lp, T a, T b, T mag, T* buf) {
    int64_t m = 0;
#if VECTOR_EXT
    typedef T V __attribute__((vector_size(VBYTES)));
    enum { W = VBYTES / sizeof(T) };
    V av, bv, lowest, zero;
    for (int u = 0; u < W; u++) { av[u] = a; bv[u] = b; lowest[u] = (T)(-mag - 1); zero[u] = 0; }
    V m1[4] = {lowest, lowest, lowest, lowest}, m2[4] = {lowest, lowest, lowest, lowest};
    V m3[4] = {lowest, lowest, lowest, lowest}, n[4] = {zero, zero, zero, zero};
#define MAXMIN(x, y, hi, lo)                     \
    {                                            \
        V x_ = (x), y_ = (y), gt_ = (V)(x_ > y_);  \
        hi = (x_ & gt_) | (y_ & ~gt_);           \
        lo = (y_ & gt_) | (x_ & ~gt_);           \
    }
#define GATHER_STEP(j, at)                                  \
    {                                                       \
        V k, in, c, r1, r2, drop;                           \
        memcpy(&k, kb + (at), sizeof k);                    \
        in = (V)((k > av) & (k <= bv));                     \
        c = (k & in) | (lowest & ~in);                      \
        MAXMIN(m1[j], c, m1[j], r1)                         \
        MAXMIN(m2[j], r1, m2[j], r2)                        \
        MAXMIN(m3[j], r2, m3[j], drop)                      \
        (void)drop;                                         \
        n[j] -= in;                                         \
    }
    int64_t i = 0;
    for (; i + 4 * W <= Lp; i += 4 * W) {
        GATHER_STEP(0, i)
        GATHER_STEP(1, i + W)
        GATHER_STEP(2, i + 2 * W)
        GATHER_STEP(3, i + 3 * W)
    }
    for (; i < Lp; i += W) GATHER_STEP(0, i)
#undef GATHER_STEP
#undef MAXMIN
    int crowded = 0;
    for (int j = 0; j < 4; j++)
        for (int u = 0; u < W; u++) { /* branch-free: buf has three spare slots */
            crowded |= n[j][u] > 3;
            buf[m] = m1[j][u];
            m += n[j][u] >= 1;
            buf[m] = m2[j][u];
            m += n[j][u] >= 2;
            buf[m] = m3[j][u];
            m += n[j][u] >= 3;
        }
    if (crowded)
#else
    (void)mag;
#endif
    {
        m = 0;
        for (int64_t i = 0; i < Lp; i++) { /* branch-free: buf has spare slots */
            T k = kb[i];
            buf[m] = k;
            m += (k > a) & (k <= b);
        }
    }
    for (int64_t j = 1; j < m; j++) { /* insertion sort, ascending */
        T v = buf[j];
        int64_t i = j - 1;
        while (i >= 0 && buf[i] > v) { buf[i + 1] = buf[i]; i--; }
        buf[i + 1] = v;
    }
    return m;
}

/* Short rows (L <= SHORT_LEN): rank by counting, O(L^2) but branch-free and vectorised.
   cnt[i] = #(key > key_i); t = min over i with cnt[i] < kk of key_i (kk >= 1, so the
   largest key, with cnt 0, always qualifies); then the same tie cutoff as below. */
NOINLINE static void FN(short_threshold)(const T* row, int64_t L, int64_t kk, int exact, int by_abs, T inf, T mag,
                               T* t_out, int64_t* cut_out) {
    /* padded to a multiple of 16 so the inner loop has no scalar remainder; the padding
       (never read back) takes part in the counting only as targets, never as sources */
    T keys[SHORT_LEN + 16];
    T cnt[SHORT_LEN + 16]; /* counts <= 128 fit every key type */
    int64_t Lp = (L + 15) & ~(int64_t)15;
    for (int64_t i = 0; i < L; i++) keys[i] = FN(key)(row[i], by_abs, inf, mag);
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

#if SHORT_LANES
/* Short rows, W at a time (one per vector lane, W = VBYTES / sizeof(T)), read and written in
   place: row u's key i is at x0[u * lane_stride + i * pos_stride] (rows layout: lane_stride L,
   pos_stride 1; channels-last: lane_stride 1, pos_stride C, so each position is one contiguous
   load and store). Each lane's K-th largest key is built bit by bit from the top (keep a bit
   when at least K keys are >= the prefix with it set: the largest such value is the K-th
   largest key), 8 x sizeof(T) counting steps over L vectors for all W rows at once; then the
   same tie cutoff as short_threshold, and the output or mask written from the same vectors.
   Lanes past n hold zeros and are ignored. For 7x7 rows this is 1.5-2x (float32, 2-4x in
   channels-last) and 4x (float16) faster than ranking each row by counting. */
NOINLINE static void FN(short_lanes)(const T* x0, int64_t lane_stride, int64_t pos_stride, int64_t L, int64_t n,
                                    int64_t kk, int exact, int by_abs, int invert, T inf, T mag,
                                    T* out0, uint8_t* mask0) {
    typedef T V __attribute__((vector_size(VBYTES)));
    typedef U UV __attribute__((vector_size(VBYTES)));
    enum { W = VBYTES / sizeof(T) };
    V raw[LANES_MAX], kt[LANES_MAX];
    UV uk[LANES_MAX];
    V zero, magv, infv, inf1v, kkv, invv, idle;
    UV one, sign;
    for (int u = 0; u < W; u++) {
        idle[u] = u < n ? 0 : (T)-1; /* lanes past n: nothing to wait for */
        zero[u] = 0;
        magv[u] = mag;
        infv[u] = inf;
        inf1v[u] = (T)(inf + 1);
        kkv[u] = (T)kk;
        invv[u] = invert ? (T)-1 : 0;
        one[u] = 1;
        sign[u] = (U)((U)1 << (8 * sizeof(T) - 1));
    }
    for (int64_t i = 0; i < L; i++) { /* transpose the raw bits */
        raw[i] = zero;
        if (lane_stride == 1) {
            memcpy(&raw[i], x0 + i * pos_stride, (size_t)n * sizeof(T));
        } else {
            for (int64_t u = 0; u < n; u++) raw[i][u] = x0[u * lane_stride + i * pos_stride];
        }
    }
    for (int64_t i = 0; i < L; i++) { /* keys (as key_), then flipped to unsigned order */
        V b = raw[i], m = b & magv, big = (V)(m > infv), k;
        if (by_abs) {
            k = (inf1v & big) | (m & ~big);
        } else {
            V neg = (V)(b < zero), v = ((zero - m) & neg) | (m & ~neg);
            k = (magv & big) | (v & ~big);
        }
        kt[i] = k;
        uk[i] = (UV)k ^ sign;
    }
    /* cnt = #(uk >= t) per lane. Once it is exactly K in every lane, the K largest keys are
       fixed and t (its lower bits still zero) selects them as the K-th largest key would:
       the same keys are >= both, none ties with t beyond them, so the cutoff below keeps
       them all (kk < L, so no lane starts there). On continuous data that is about half of
       the key bits; rows whose K-th key ties (ReLU zeros at large K) run every bit. */
    UV t = (UV)zero;
    V cnt = zero + (T)L;
    for (int bit = 8 * (int)sizeof(T) - 1; bit >= 0; bit--) {
        UV cand = t | (one << bit);
        V c0 = zero, c1 = zero; /* two chains, so the adds overlap */
        int64_t i = 0;
        for (; i + 1 < L; i += 2) {
            c0 -= (V)(uk[i] >= cand);
            c1 -= (V)(uk[i + 1] >= cand);
        }
        if (i < L) c0 -= (V)(uk[i] >= cand);
        V c = c0 + c1, ok = (V)(c >= kkv);
        t = (UV)(((V)cand & ok) | ((V)t & ~ok));
        cnt = (c & ok) | (cnt & ~ok);
        V settled = (V)(cnt == kkv) | idle;
        if (all_lanes_set(&settled)) break;
    }
    V tk = (V)(t ^ sign), gt = zero, eq = zero, cutv = zero;
    for (int64_t i = 0; i < L; i++) {
        gt -= (V)(kt[i] > tk);
        eq -= (V)(kt[i] == tk);
    }
    for (int64_t u = 0; u < W; u++) {
        int64_t cut = L, missing = kk - (int64_t)gt[u], seen = 0;
        if (exact && u < n && missing < (int64_t)eq[u]) {
            for (int64_t i = 0; i < L; i++) {
                if (kt[i][u] == tk[u] && ++seen == missing) { cut = i + 1; break; }
            }
        }
        cutv[u] = (T)cut; /* <= LANES_MAX (200): fits every key type */
    }
    for (int64_t i = 0; i < L; i++) {
        V iv = zero + (T)i;
        V sel = ((V)(kt[i] > tk) | ((V)(kt[i] == tk) & (V)(iv < cutv))) ^ invv;
        if (out0) {
            V o = raw[i] & sel;
            if (lane_stride == 1) {
                memcpy(out0 + i * pos_stride, &o, (size_t)n * sizeof(T));
            } else {
                for (int64_t u = 0; u < n; u++) out0[u * lane_stride + i * pos_stride] = o[u];
            }
        }
        if (mask0) {
            for (int64_t u = 0; u < n; u++) mask0[u * lane_stride + i * pos_stride] = (uint8_t)(sel[u] & 1);
        }
    }
}
#endif

/* The sample's keys are scattered over the row, so reading them straight from memory costs one
   cache miss each (about a quarter of the row's time for 56x56 rows); the row loop asks for the
   next row's sample lines while it works on this one. */
static inline void FN(prefetch_sample)(const T* row, int64_t L) {
#if defined(__GNUC__)
    for (int64_t j = 0; j < SAMPLE; j++) __builtin_prefetch(row + (j * L) / SAMPLE); /* L > SAMPLE */
#else
    (void)row;
    (void)L;
#endif
}

/* t and cutoff for one contiguous row of raw bits. Long rows leave their keys in kb (at least
   PAD(L) entries) and return 1; short rows return 0. buf holds at least GATHER + 3 keys. */
static int FN(row_threshold)(const T* row, int64_t L, int64_t kk, int exact, int by_abs, T inf, T mag,
                            T* kb, T* buf, T* t_out, int64_t* cut_out) {
    if (L <= SHORT_LEN) {
        FN(short_threshold)(row, L, kk, exact, by_abs, inf, mag, t_out, cut_out);
        return 0;
    }
    int64_t Lp = PAD(L);
    /* a stride sample of S = SAMPLE keys (L > SHORT_LEN >= SAMPLE), ranked branch-free by counting
       (rank = #smaller + #equal earlier: a permutation of 0..S-1), which costs a few vector ops
       where an insertion sort costs a mispredicted branch per key */
    enum { S = SAMPLE };
    T sample[SAMPLE], rank[SAMPLE];
    for (int64_t j = 0; j < S; j++) {
        sample[j] = FN(key)(row[(j * L) / S], by_abs, inf, mag);
        rank[j] = 0;
    }
    for (int64_t i = 0; i < S; i++) {
        T si = sample[i];
        for (int64_t j = 0; j < S; j++) rank[j] += (T)((si < sample[j]) | ((si == sample[j]) & (i < j)));
    }
    T a, b;
    int64_t ga, gb;
    {
        /* thresholds: NTH consecutive sample order statistics around the expected sample rank
           of the K-th largest key (S - p S, ascending), so that after the keys pass the bracket
           is usually one or two sample gaps wide, about L / S keys each */
        double centre = (double)S - (double)kk * (double)S / (double)L;
        int64_t first = (int64_t)floor(centre) - NTH / 2;
        if (first > S - NTH) first = S - NTH;
        if (first < 0) first = 0;
        T v[NTH];
        for (int j = 0; j < NTH; j++) v[j] = 0;
        for (int64_t j = 0; j < S; j++) { /* v[rank - first] = sample[j] for ranks in range */
            int64_t at = (int64_t)rank[j] - first;
            if (at >= 0 && at < NTH) v[at] = sample[j];
        }
        T rmin, rmax;
        int64_t g[NTH];
        FN(keys_pass)(row, L, by_abs, inf, mag, v, kb, &rmin, &rmax, g);
        a = (T)(rmin - 1); /* keys never reach the type's minimum, so no wrap */
        b = rmax;
        ga = L;
        gb = 0;
        for (int j = 0; j < NTH; j++) {
            if (g[j] >= kk && v[j] > a) { a = v[j]; ga = g[j]; }
            if (g[j] < kk && v[j] < b) { b = v[j]; gb = g[j]; }
        }
    }
    {
        /* Narrow (a, b] with two thresholds per pass, placed around the interpolated K-th key
           at +-delta ranks, delta ~ the count's sampling error sqrt(band) (widened after a
           miss); when a pass did not halve the band, the next one trisects the key span
           instead (so at most ~1.6 x key-bits passes whatever the data). */
        int trisect = 0;
        double widen = 1.0;
        while (ga - gb > GATHER && (uint64_t)b - (uint64_t)a > 1) {
            int64_t band = ga - gb;
            uint64_t span = (uint64_t)b - (uint64_t)a;
            uint64_t o1, o2;
            if (trisect) {
                o1 = span / 3;
                o2 = span - span / 3;
            } else {
                double delta = widen * (sqrt((double)band) + 1.0);
                double f1 = ((double)(ga - kk) + 0.5 - delta) / (double)band;
                double f2 = ((double)(ga - kk) + 0.5 + delta) / (double)band;
                f1 = f1 < 0.0 ? 0.0 : (f1 > 1.0 ? 1.0 : f1);
                f2 = f2 < 0.0 ? 0.0 : (f2 > 1.0 ? 1.0 : f2);
                o1 = (uint64_t)((double)span * f1);
                o2 = (uint64_t)((double)span * f2);
            }
            if (o1 < 1) o1 = 1;
            if (o1 > span - 1) o1 = span - 1;
            if (o2 < 1) o2 = 1;
            if (o2 > span - 1) o2 = span - 1;
            T v1 = (T)((uint64_t)a + o1), v2 = (T)((uint64_t)a + o2);
            int64_t g1, g2;
            FN(count2)(kb, L, v1, v2, &g1, &g2);
            int straddle = (g1 >= kk) != (g2 >= kk);
            if (g1 >= kk && v1 > a) { a = v1; ga = g1; }
            if (g2 >= kk && v2 > a) { a = v2; ga = g2; }
            if (g1 < kk && v1 < b) { b = v1; gb = g1; }
            if (g2 < kk && v2 < b) { b = v2; gb = g2; }
            if (!trisect) widen = straddle ? (widen > 1.0 ? widen * 0.5 : 1.0) : widen * 2.0;
            trisect = (ga - gb) * 2 > band;
        }
    }
    T t;
    int64_t gt_t, eq_t;
    if ((uint64_t)b - (uint64_t)a == 1) {
        t = b;
        gt_t = gb;
        eq_t = ga - gb;
    } else {
        int64_t m = FN(gather_band)(kb, Lp, a, b, mag, buf); /* at most GATHER keys lie in (a, b] */
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
                if (kb[i] == t && ++seen == missing) { cut = i + 1; break; }
            }
        }
    }
    *t_out = t;
    *cut_out = cut;
    return 1;
}

/* selected values (others +0.0) and/or mask of one row, with the keys from kb or, when kb is
   NULL (short rows), recomputed from the raw bits; split at the cutoff so both loops are
   branch-free */
static inline void FN(write_row)(const T* restrict row, const T* restrict kb, int64_t L, T t, int64_t cut,
                                int by_abs, int invert, T inf, T mag, T* restrict out, uint8_t* restrict mask) {
    uint8_t inv = (uint8_t)(invert != 0);
#define WRITE_LOOPS(KEY)                                                                              \
    if (out) {                                                                                        \
        for (int64_t i = 0; i < cut; i++) out[i] = ((uint8_t)((KEY) >= t) ^ inv) ? row[i] : (T)0;     \
        for (int64_t i = cut; i < L; i++) out[i] = ((uint8_t)((KEY) > t) ^ inv) ? row[i] : (T)0;      \
    }                                                                                                 \
    if (mask) {                                                                                       \
        for (int64_t i = 0; i < cut; i++) mask[i] = (uint8_t)((KEY) >= t) ^ inv;                      \
        for (int64_t i = cut; i < L; i++) mask[i] = (uint8_t)((KEY) > t) ^ inv;                       \
    }
    if (kb) {
        WRITE_LOOPS(kb[i])
    } else {
        WRITE_LOOPS(FN(key)(row[i], by_abs, inf, mag))
    }
#undef WRITE_LOOPS
}

/* x: (R, L) rows contiguous. out / mask: same layout, either may be NULL. */
void FN(topk_rows)(const T* x, int64_t R, int64_t L, int64_t kk, int exact, int by_abs, int invert,
                  T inf, T mag, T* out, uint8_t* mask, int nthreads) {
    int lanes = SHORT_LANES && L <= LANES_MAX; /* short rows go W at a time through short_lanes */
    int64_t step = lanes ? (int64_t)(VBYTES / sizeof(T)) : 1;
    int64_t nblocks = (R + step - 1) / step;
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1 && nblocks > 1)
    {
        T buf[GATHER + 3];
        T* kb = !lanes && L > SHORT_LEN ? (T*)malloc(sizeof(T) * (size_t)PAD(L)) : 0;
        /* guided: balances threads that run at uneven speed (a busy shared host); measured there
           1.1-1.25x on 7x7 rows against static, mixed (0.92-1.15x) on long rows */
        #pragma omp for schedule(guided)
        for (int64_t blk = 0; blk < nblocks; blk++) {
            int64_t r0 = blk * step;
#if SHORT_LANES
            if (lanes) {
                FN(short_lanes)(x + r0 * L, L, 1, L, R - r0 < step ? R - r0 : step, kk, exact, by_abs, invert, inf,
                               mag, out ? out + r0 * L : 0, mask ? mask + r0 * L : 0);
                continue;
            }
#endif
            T t;
            int64_t cut;
            if (r0 + 1 < R && L > SHORT_LEN) FN(prefetch_sample)(x + (r0 + 1) * L, L);
            int keyed = FN(row_threshold)(x + r0 * L, L, kk, exact, by_abs, inf, mag, kb, buf, &t, &cut);
            FN(write_row)(x + r0 * L, keyed ? kb : 0, L, t, cut, by_abs, invert, inf, mag,
                         out ? out + r0 * L : 0, mask ? mask + r0 * L : 0);
        }
        free(kb);
    }
}

/* x: (N, L, C) channel innermost (channels_last, tokens). out / mask alike, either may be NULL. */
void FN(topk_cl)(const T* x, int64_t N, int64_t L, int64_t C, int64_t kk, int exact, int by_abs, int invert,
                T inf, T mag, T* out, uint8_t* mask, int nthreads) {
    int64_t nblocks = (C + CBLOCK - 1) / CBLOCK;
    int64_t jobs = N * nblocks;
    uint8_t inv = (uint8_t)(invert != 0);
    int lanes = SHORT_LANES && L <= LANES_MAX; /* short rows: short_lanes, in place */
    #pragma omp parallel num_threads(nthreads) if (nthreads > 1 && jobs > 1)
    {
        T buf[GATHER + 3];
        T ts[CBLOCK];
        int64_t cuts[CBLOCK];
        T* block = lanes ? 0 : (T*)malloc(sizeof(T) * (size_t)(CBLOCK * L));
        T* kb = !lanes && L > SHORT_LEN ? (T*)malloc(sizeof(T) * (size_t)PAD(L)) : 0;
        #pragma omp for schedule(guided) /* as in topk_rows */
        for (int64_t job = 0; job < jobs; job++) {
            int64_t n = job / nblocks, c0 = (job % nblocks) * CBLOCK;
            int64_t nb = C - c0 < CBLOCK ? C - c0 : CBLOCK;
            const T* src = x + n * L * C;
#if SHORT_LANES
            if (lanes) { /* W channels per call */
                int64_t w = (int64_t)(VBYTES / sizeof(T));
                for (int64_t j = 0; j < nb; j += w) {
                    int64_t at = n * L * C + c0 + j;
                    FN(short_lanes)(x + at, 1, C, L, nb - j < w ? nb - j : w, kk, exact, by_abs, invert, inf, mag,
                                   out ? out + at : 0, mask ? mask + at : 0);
                }
                continue;
            }
#endif
            for (int64_t i = 0; i < L; i++)
                for (int64_t j = 0; j < nb; j++) block[j * L + i] = src[i * C + c0 + j];
            for (int64_t j = 0; j < nb; j++)
                FN(row_threshold)(block + j * L, L, kk, exact, by_abs, inf, mag, kb, buf, &ts[j], &cuts[j]);
            for (int64_t i = 0; i < L; i++) {
                for (int64_t j = 0; j < nb; j++) {
                    int64_t at = n * L * C + i * C + c0 + j;
                    T b = src[i * C + c0 + j];
                    T k = FN(key)(b, by_abs, inf, mag);
                    uint8_t s = (uint8_t)((k > ts[j]) | ((k == ts[j]) & (i < cuts[j]))) ^ inv;
                    if (out) out[at] = s ? b : (T)0;
                    if (mask) mask[at] = s;
                }
            }
        }
        free(kb);
        free(block);
    }
}

#undef T
#undef U
#undef S
#undef SHORT_LEN
#undef SHORT_LANES
