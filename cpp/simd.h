// Thin vector wrappers: one type per SIMD level, the same small interface each.
// Included only by the kernels_<level>.cpp translation units, inside an anonymous
// namespace, so that nothing compiled with wider -m flags leaks into other code
// through the linker's choice of inline functions.
#pragma once

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

// The constants of a segment transpose of `SEG`-float segments (VAvx512::segTranspose; the other
// levels gather instead): for element c of every segment, the permute index of each lane within
// its block of 32 floats and, per block, the lanes it fills.
template <int SEG>
struct SegTransposeConsts {
  alignas(64) int32_t idx[SEG][16];
  uint16_t mask[SEG][(SEG + 1) / 2];
  constexpr SegTransposeConsts() : idx(), mask() {
    for (int c = 0; c < SEG; ++c)
      for (int l = 0; l < 16; ++l) {
        const int at = l * SEG + c;
        idx[c][l] = at & 31;
        mask[c][at >> 5] = static_cast<uint16_t>(mask[c][at >> 5] | (1u << l));
      }
  }
};

struct VScalar {
  static constexpr int W = 1;
  float v;
  static VScalar load(const float* p) { return {*p}; }
  static VScalar set1(float s) { return {s}; }
  static VScalar zero() { return {0.f}; }
  // Lanes p[idx[0]], p[idx[1]], ...
  static VScalar gather(const float* p, const int32_t* idx) { return {p[idx[0]]}; }
  // Lanes t[idx[0]], t[idx[1]], ... of a register (0 <= idx[l] < W).
  static VScalar permute(VScalar t, const int32_t*) { return t; }
  void store(float* p) const { *p = v; }
  static constexpr bool kCanStream = false;
  static constexpr bool kHsum8 = false;
  static constexpr bool kSegTranspose = false;
  void stream(float* p) const { *p = v; }
  static void fence() {}
  friend VScalar operator+(VScalar a, VScalar b) { return {a.v + b.v}; }
  friend VScalar operator-(VScalar a, VScalar b) { return {a.v - b.v}; }
  friend VScalar operator*(VScalar a, VScalar b) { return {a.v * b.v}; }
  // a*b + c, fused where the hardware has it.
  // The core is built with -ffp-contract=off, so a fused a*b+c is asked for explicitly where
  // the target has the instruction (the vector lanes' arithmetic), and the baseline TU never
  // calls the slow software fmaf().
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
  static VScalar fma(VScalar a, VScalar b, VScalar c) { return {__builtin_fmaf(a.v, b.v, c.v)}; }
  static VScalar fnma(VScalar a, VScalar b, VScalar c) { return {__builtin_fmaf(-a.v, b.v, c.v)}; }
#else
  static VScalar fma(VScalar a, VScalar b, VScalar c) { return {a.v * b.v + c.v}; }
  // c - a*b
  static VScalar fnma(VScalar a, VScalar b, VScalar c) { return {c.v - a.v * b.v}; }
#endif
  double hsum() const { return (double)v; }
  // o[2l] = a[l], o[2l + 1] = b[l] in double, for every lane l (row sums written as {S1, S2} pairs).
  static void storePairs(double* o, VScalar a, VScalar b) { o[0] = (double)a.v, o[1] = (double)b.v; }
};

#if defined(__AVX2__) || defined(__AVX512F__)
// Four lanes, used only for the tails of streamed rows (multiples of 4 floats).
struct VSse4 {
  static constexpr int W = 4;
  __m128 v;
  static VSse4 load(const float* p) { return {_mm_loadu_ps(p)}; }
  static VSse4 set1(float s) { return {_mm_set1_ps(s)}; }
  static VSse4 zero() { return {_mm_setzero_ps()}; }
  static VSse4 permute(VSse4 t, const int32_t* idx) {
    return {_mm_permutevar_ps(t.v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx)))};
  }
  static VSse4 gather(const float* p, const int32_t* idx) {
    return {_mm_i32gather_ps(p, _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx)), 4)};
  }
  void store(float* p) const { _mm_storeu_ps(p, v); }
  static constexpr bool kCanStream = true;
  static constexpr bool kHsum8 = false;
  static constexpr bool kSegTranspose = false;
  void stream(float* p) const { _mm_stream_ps(p, v); }
  friend VSse4 operator+(VSse4 a, VSse4 b) { return {_mm_add_ps(a.v, b.v)}; }
  friend VSse4 operator-(VSse4 a, VSse4 b) { return {_mm_sub_ps(a.v, b.v)}; }
  friend VSse4 operator*(VSse4 a, VSse4 b) { return {_mm_mul_ps(a.v, b.v)}; }
  static VSse4 fma(VSse4 a, VSse4 b, VSse4 c) { return {_mm_fmadd_ps(a.v, b.v, c.v)}; }
  static VSse4 fnma(VSse4 a, VSse4 b, VSse4 c) { return {_mm_fnmadd_ps(a.v, b.v, c.v)}; }
};
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
struct VAvx2 {
  static constexpr int W = 8;
  __m256 v;
  static VAvx2 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static VAvx2 set1(float s) { return {_mm256_set1_ps(s)}; }
  static VAvx2 zero() { return {_mm256_setzero_ps()}; }
  static VAvx2 permute(VAvx2 t, const int32_t* idx) {
    return {_mm256_permutevar8x32_ps(t.v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)))};
  }
  static VAvx2 gather(const float* p, const int32_t* idx) {
    return {_mm256_i32gather_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)), 4)};
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  // Non-temporal stores in 16-byte pieces: p must be 16-byte aligned.
  static constexpr bool kCanStream = true;
  static constexpr bool kHsum8 = false;
  static constexpr bool kSegTranspose = false;
  void stream(float* p) const {
    _mm_stream_ps(p, _mm256_castps256_ps128(v));
    _mm_stream_ps(p + 4, _mm256_extractf128_ps(v, 1));
  }
  static void fence() { _mm_sfence(); }
  friend VAvx2 operator+(VAvx2 a, VAvx2 b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend VAvx2 operator-(VAvx2 a, VAvx2 b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend VAvx2 operator*(VAvx2 a, VAvx2 b) { return {_mm256_mul_ps(a.v, b.v)}; }
  static VAvx2 fma(VAvx2 a, VAvx2 b, VAvx2 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static VAvx2 fnma(VAvx2 a, VAvx2 b, VAvx2 c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
  double hsum() const {
    // Sum the lanes in double so the horizontal step adds no float32 rounding.
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    __m256d s = _mm256_add_pd(lo, hi);
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
  }
  static void storePairs(double* o, VAvx2 a, VAvx2 b) {
    for (int h = 0; h < 2; ++h) {
      const __m256d x = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(a.v, 1) : _mm256_castps256_ps128(a.v));
      const __m256d y = _mm256_cvtps_pd(h ? _mm256_extractf128_ps(b.v, 1) : _mm256_castps256_ps128(b.v));
      const __m256d lo = _mm256_unpacklo_pd(x, y), hi = _mm256_unpackhi_pd(x, y);  // {x0 y0 x2 y2}, {x1 y1 x3 y3}
      _mm256_storeu_pd(o + 8 * h, _mm256_permute2f128_pd(lo, hi, 0x20));
      _mm256_storeu_pd(o + 8 * h + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
    }
  }
};
#endif

#if defined(__AVX512F__)
struct VAvx512 {
  static constexpr int W = 16;
  __m512 v;
  static VAvx512 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static VAvx512 set1(float s) { return {_mm512_set1_ps(s)}; }
  static VAvx512 zero() { return {_mm512_setzero_ps()}; }
  static VAvx512 gather(const float* p, const int32_t* idx) { return {_mm512_i32gather_ps(_mm512_loadu_si512(idx), p, 4)}; }
  static VAvx512 permute(VAvx512 t, const int32_t* idx) { return {_mm512_permutexvar_ps(_mm512_loadu_si512(idx), t.v)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  static constexpr bool kCanStream = true;
  static constexpr bool kHsum8 = true;  // hsum8 below (storeRowSums)
  static constexpr bool kSegTranspose = true;  // segTranspose below
  void stream(float* p) const {
    if ((reinterpret_cast<uintptr_t>(p) & 63) == 0) return _mm512_stream_ps(p, v);
    _mm_stream_ps(p, _mm512_castps512_ps128(v));
    _mm_stream_ps(p + 4, _mm512_extractf32x4_ps(v, 1));
    _mm_stream_ps(p + 8, _mm512_extractf32x4_ps(v, 2));
    _mm_stream_ps(p + 12, _mm512_extractf32x4_ps(v, 3));
  }
  static void fence() { _mm_sfence(); }
  friend VAvx512 operator+(VAvx512 a, VAvx512 b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend VAvx512 operator-(VAvx512 a, VAvx512 b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend VAvx512 operator*(VAvx512 a, VAvx512 b) { return {_mm512_mul_ps(a.v, b.v)}; }
  static VAvx512 fma(VAvx512 a, VAvx512 b, VAvx512 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  static VAvx512 fnma(VAvx512 a, VAvx512 b, VAvx512 c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; }
  double hsum() const {
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
  }
  // out[c] lane l = p[l*SEG + c] for every c < SEG < 16: the 16 segments of a narrow row (16*SEG
  // contiguous floats) turned into one vector per element, by two-source permutes over blocks of 32
  // floats, where a gather per element was the narrow row sums' main cost. SEG is a constant (the
  // kernels pick the instance per tile, withSeg): the indices and masks are then constants and the
  // loops straight code (with them read from a table in loops over a run-time width, the transposes
  // cost twice as much). Each lane is filled from one block; reads p[0, 16*SEG) only.
  template <int SEG>
  static void segTranspose(const float* p, VAvx512* out) {
    static constexpr SegTransposeConsts<SEG> k{};
    constexpr int NB = (SEG + 1) / 2;
    __m512 lo[NB], hi[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      lo[b] = _mm512_loadu_ps(p + 32 * b);
      hi[b] = 32 * b + 16 < 16 * SEG ? _mm512_loadu_ps(p + 32 * b + 16) : _mm512_setzero_ps();
    }
#pragma GCC unroll 16
    for (int c = 0; c < SEG; ++c) {
      const __m512i idx = _mm512_load_si512(k.idx[c]);
      __m512 r = _mm512_permutex2var_ps(lo[0], idx, hi[0]);  // (the other blocks' lanes overwritten below)
#pragma GCC unroll 8
      for (int b = 1; b < NB; ++b) r = _mm512_mask_mov_ps(r, k.mask[c][b], _mm512_permutex2var_ps(lo[b], idx, hi[b]));
      out[c].v = r;
    }
  }
  // o[k] = the sum of v[k]'s lanes, k < 8, for eight vectors at once (a transposing tree of
  // adds, ~25 instructions against ~80 for eight hsums); the lanes are added in float32.
  static void hsum8(const VAvx512* v, double* o) {
    __m512 t[4];
    for (int k = 0; k < 4; ++k)
      t[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k].v, v[2 * k + 1].v), _mm512_unpackhi_ps(v[2 * k].v, v[2 * k + 1].v));
    __m512 u[2];
    for (int k = 0; k < 2; ++k) {
      const __m512d a = _mm512_castps_pd(t[2 * k]), b = _mm512_castps_pd(t[2 * k + 1]);
      u[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    // u[k]'s 128-bit lane L holds lane L's sums of v[4k..4k+3]; add the four lanes.
    const __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m256 lo = _mm512_castps512_ps256(w), hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1));
    const __m256 r = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
    _mm512_storeu_pd(o, _mm512_cvtps_pd(r));
  }
  static void storePairs(double* o, VAvx512 a, VAvx512 b) {
    const __m512i lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    for (int h = 0; h < 2; ++h) {
      const __m512d x = _mm512_cvtps_pd(h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a.v), 1)) : _mm512_castps512_ps256(a.v));
      const __m512d y = _mm512_cvtps_pd(h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b.v), 1)) : _mm512_castps512_ps256(b.v));
      _mm512_storeu_pd(o + 16 * h, _mm512_permutex2var_pd(x, lo, y));
      _mm512_storeu_pd(o + 16 * h + 8, _mm512_permutex2var_pd(x, hi, y));
    }
  }
};
#endif

#if defined(__ARM_NEON)
struct VNeon {
  static constexpr int W = 4;
  float32x4_t v;
  static VNeon load(const float* p) { return {vld1q_f32(p)}; }
  static VNeon set1(float s) { return {vdupq_n_f32(s)}; }
  static VNeon zero() { return {vdupq_n_f32(0.f)}; }
  static VNeon permute(VNeon t, const int32_t* idx) {
    float l[4];
    vst1q_f32(l, t.v);
    const float r[4] = {l[idx[0]], l[idx[1]], l[idx[2]], l[idx[3]]};
    return {vld1q_f32(r)};
  }
  static VNeon gather(const float* p, const int32_t* idx) {
    const float l[4] = {p[idx[0]], p[idx[1]], p[idx[2]], p[idx[3]]};
    return {vld1q_f32(l)};
  }
  void store(float* p) const { vst1q_f32(p, v); }
  static constexpr bool kCanStream = false;
  static constexpr bool kHsum8 = false;
  static constexpr bool kSegTranspose = false;
  void stream(float* p) const { vst1q_f32(p, v); }
  static void fence() {}
  friend VNeon operator+(VNeon a, VNeon b) { return {vaddq_f32(a.v, b.v)}; }
  friend VNeon operator-(VNeon a, VNeon b) { return {vsubq_f32(a.v, b.v)}; }
  friend VNeon operator*(VNeon a, VNeon b) { return {vmulq_f32(a.v, b.v)}; }
  static VNeon fma(VNeon a, VNeon b, VNeon c) { return {vfmaq_f32(c.v, a.v, b.v)}; }
  static VNeon fnma(VNeon a, VNeon b, VNeon c) { return {vfmsq_f32(c.v, a.v, b.v)}; }
  double hsum() const {
    float64x2_t lo = vcvt_f64_f32(vget_low_f32(v));
    float64x2_t hi = vcvt_high_f64_f32(v);
    return vaddvq_f64(vaddq_f64(lo, hi));
  }
  static void storePairs(double* o, VNeon a, VNeon b) {
    const float64x2_t a0 = vcvt_f64_f32(vget_low_f32(a.v)), a1 = vcvt_high_f64_f32(a.v);
    const float64x2_t b0 = vcvt_f64_f32(vget_low_f32(b.v)), b1 = vcvt_high_f64_f32(b.v);
    vst1q_f64(o, vzip1q_f64(a0, b0));
    vst1q_f64(o + 2, vzip2q_f64(a0, b0));
    vst1q_f64(o + 4, vzip1q_f64(a1, b1));
    vst1q_f64(o + 6, vzip2q_f64(a1, b1));
  }
};
#endif
