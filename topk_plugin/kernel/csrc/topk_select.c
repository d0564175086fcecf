/* topk_select.c: the CPU selection kernel of topk-plugin (built on first use by
   topk_plugin/_select_build.py, loaded with ctypes by topk_plugin/_select_ops.py).

   What the kernel computes, per row of L raw float bit patterns: the K-th
   largest rank key t and a cutoff index c such that entry i is
   selected iff key_i > t or (key_i == t and i < c); then it writes
   the selected values (others +0.0, i.e. all-zero bits) and/or the bool mask.
   The keys are the total order of functional._rank_keys (every NaN ranks
   highest and all NaNs tie, -0.0 ties +0.0), so the result is bit for bit
   the one of the pure-PyTorch path.

   How t is found for a long row, with G(v) = #(key > v) and the bracket
   invariant G(a) >= K > G(b) (so a < t <= b):

   1. a stride sample of 32 keys is ranked branch-free; its 4 order statistics
      around the expected rank of the K-th key become thresholds. The sample's
      cache lines are prefetched one row ahead (they are scattered over the row);
   2. the keys pass, the only pass that streams the row from memory, writes the
      row's keys to a per-thread buffer kb (L1/L2-resident) and counts G at
      the 4 thresholds plus the row's min and max, which start the bracket as
      (min - 1, max]; the bracket is then usually one or two sample gaps wide;
   3. while the bracket holds more than GATHER (16) keys and b - a > 1, one
      pass over kb counts G at two thresholds placed around the
      interpolated K-th key at +-sqrt(band) ranks (the counts' sampling error,
      widened after a miss), or trisects the key span when the last pass did not
      halve the band (a safeguard that bounds the passes by the key bits);
   4. either b - a == 1 (then t = b, exact even with many ties) or the few
      keys in (a, b] are gathered (gather_band: three per vector lane,
      scalar fallback when a lane holds more) and sorted.

   Measured on 56x56 rows (2 cores, post-ReLU float32) this is 2 to 3 passes in
   step 3, and about 2.6x less time per row than the previous version (a
   32-key insertion-sorted sample, 2 thresholds, a separate min/max pass and
   64-bit counters), mostly from keeping the counters in vector registers.

   Short rows skip all of this. With vector extensions, float16/bfloat16/float32 rows of
   at most LANES_MAX (200) keys are processed W at a time, one per vector lane
   (short_lanes): after a transpose, each lane's t is built bit by bit from the
   top with one counting step per key bit (stopping early once exactly K keys of every
   lane are >= the prefix, which fixes the selection), and the output is written from the same
   vectors (in channels-last, straight from and to the tensor). Otherwise rows of at most
   SHORT_<type> keys (128, or 64 for float64) rank by counting: each key's
   #(key > key_i) is accumulated by an O(L^2) branch-free loop, and t is the
   smallest key whose count is below K (short_threshold). The tie cutoff is the same.

   Every pass is a branch-free loop the compiler vectorises: plain reductions over
   restrict pointers with counters of the key type (flushed every CHUNK
   keys), and GCC/Clang vector extensions for the gather (the only loop whose
   per-lane state a compiler would otherwise spill to the stack). The memory
   traffic is one read of the input and one write of the output (or the mask).
*/

#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#define SAMPLE 32
#define GATHER 16
#define NTH 4 /* thresholds counted by the keys pass (written out in KEYS_PASS_BODY) */
#define CBLOCK 16
/* inlined into the OpenMP-outlined loops, the short-row ranking runs ~8x slower (gcc 12) */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Vector width of the GCC/Clang vector-extension code (band gather, short rows W at a time),
   from the compile target and never wider than it: a vector wider than the hardware's is
   split by the compiler into several registers and spilled, which made the 64-byte code 3-6x
   slower than plain C on AVX2-only CPUs. -DTOPK_VBYTES=N overrides (tests, benchmarks);
   0 means plain C. AVX-512 needs BW for the 16-bit lanes; plain AVX has no 256-bit integers. */
#ifndef TOPK_VBYTES
#if defined(__AVX512F__) && defined(__AVX512BW__)
#define TOPK_VBYTES 64
#elif defined(__AVX2__)
#define TOPK_VBYTES 32
#elif defined(__SSE4_1__) || defined(__ARM_NEON) || defined(__aarch64__)
#define TOPK_VBYTES 16
#else
#define TOPK_VBYTES 0
#endif
#endif
#if TOPK_VBYTES != 0 && TOPK_VBYTES != 16 && TOPK_VBYTES != 32 && TOPK_VBYTES != 64
#error "TOPK_VBYTES must be 0, 16, 32 or 64 (the key buffers are padded for at most 64-byte vectors)"
#endif
/* GCC/Clang vector extensions serve the band gather and short rows W at a time (short_lanes);
   other compilers, targets without integer vectors, or -DTOPK_PORTABLE (which the tests build
   to check these paths) use plain C */
#if defined(__GNUC__) && !defined(TOPK_PORTABLE) && TOPK_VBYTES > 0
#define VECTOR_EXT 1
#define VBYTES TOPK_VBYTES
#else
#define VECTOR_EXT 0
#define VBYTES 16 /* unused by plain C beyond the padding below */
#endif

#if VECTOR_EXT
/* Whether every bit of a VBYTES-byte vector is set (one test instruction where the ISA has it). */
static inline int all_lanes_set(const void* v) {
    uint64_t w[VBYTES / 8], a = ~(uint64_t)0;
    memcpy(w, v, VBYTES);
    for (int i = 0; i < VBYTES / 8; i++) a &= w[i];
    return a == ~(uint64_t)0;
}
#endif

/* What this build is, for the loader's status line: the vector bytes (0 = plain C). */
int topk_vector_bytes(void) { return VECTOR_EXT ? VBYTES : 0; }

/* key buffers are padded to a multiple of BLOCK keys (one 64-byte vector of int16, so a whole
   number of vectors of every width and key type: the gather's tail loop relies on it);
   counts in the key type are flushed every CHUNK keys (int16 lanes hold at most 32767) */
#define BLOCK 32
#define PAD(n) (((n) + BLOCK - 1) & ~(int64_t)(BLOCK - 1))
#define CHUNK 16384
#ifndef LANES_MAX
#define LANES_MAX 200 /* rows up to this many keys (14x14 included) take short_lanes: measured
                         1.5-2x faster than the other paths up to 12x12, ~1.2x at 14x14, slower at 16x16 */
#endif

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, S) /* FN(topk_rows) -> topk_rows_i32 */

/* One copy of the body per integer key type: int16 for float16/bfloat16, int32 for float32,
   int64 for float64. SHORT_LEN: rows up to this many keys take the O(L^2) rank-counting branch
   (its inner loop has 16 / 8 / 4 lanes of int16 / int32 / int64 in 256-bit vectors, so the
   break-even differs). SHORT_LANES: short rows W at a time (64 steps over 8 lanes of int64 is
   no faster than ranking by counting). */
#define T int16_t
#define U uint16_t
#define S i16
#define SHORT_LEN 128
#define SHORT_LANES VECTOR_EXT
#include "topk_select_body.h"

#define T int32_t
#define U uint32_t
#define S i32
#define SHORT_LEN 128
#define SHORT_LANES VECTOR_EXT
#include "topk_select_body.h"

#define T int64_t
#define U uint64_t
#define S i64
#define SHORT_LEN 64
#define SHORT_LANES 0
#include "topk_select_body.h"
