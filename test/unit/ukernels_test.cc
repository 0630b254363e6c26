//===- ukernels_test.cc - CPU microkernels against double references ------===//
//
// Every ukernel runs on random data over awkward sizes and is compared with a
// naive double-precision reference (normalized error: max |got - ref| over
// max |ref|). Each case runs under several schedules: count = 1, 2, 3, 7
// workgroups called one after the other, and the same counts on concurrent
// std::threads. Outputs start as NaN, so an element that no workgroup writes
// fails the comparison.
//
//===----------------------------------------------------------------------===//
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "test/unit/ukernels_math_probe.h"
#include "ukernels.h"

namespace {

using std::int64_t;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kTol = 1e-4;

struct Schedule {
  int64_t count;
  bool threads;
};

constexpr Schedule kSchedules[] = {{1, false}, {2, false}, {3, false}, {7, false},
                                   {1, true},  {2, true},  {3, true},  {7, true}};

std::string Describe(const Schedule &s) {
  return std::to_string(s.count) + (s.threads ? " workgroups on threads" : " workgroups in a loop");
}

// Calls fn(wg, count) for every wg of the schedule.
template <class F>
void RunWorkgroups(const Schedule &s, F &&fn) {
  if (!s.threads) {
    for (int64_t wg = 0; wg < s.count; ++wg) fn(wg, s.count);
    return;
  }
  std::vector<std::thread> threads;
  for (int64_t wg = 0; wg < s.count; ++wg) threads.emplace_back([&fn, wg, &s] { fn(wg, s.count); });
  for (auto &t : threads) t.join();
}

std::vector<float> Random(size_t n, std::mt19937 &rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = dist(rng);
  return v;
}

// max |got - ref| / max |ref| <= tol, and every element finite.
void ExpectClose(const std::vector<float> &got, const std::vector<double> &ref, double tol,
                 const std::string &what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double max_ref = 0, max_err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << " (reference " << ref[i]
                    << ")";
      return;
    }
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    double err = std::fabs(got[i] - ref[i]);
    if (err > max_err) max_err = err, worst = i;
  }
  double normalized = max_ref > 0 ? max_err / max_ref : max_err;
  EXPECT_LE(normalized, tol) << what << ": worst element " << worst << " got " << got[worst]
                             << " reference " << ref[worst];
}

double ActRef(double x, int act) {
  switch (act) {
    // 0.5 x (1 + tanh(y)) and 0.5 x (1 + erf(x / sqrt 2)), written without the
    // cancellation of 1 + tanh and 1 + erf for negative x.
    case KILN_UK_ACT_GELU_TANH: {
      double y = std::sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
      return x / (1.0 + std::exp(-2.0 * y));
    }
    case KILN_UK_ACT_SILU: return x / (1.0 + std::exp(-x));
    case KILN_UK_ACT_GELU_ERF: return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    default: return x;
  }
}

std::vector<float> Pack(const std::vector<float> &B, int64_t K, int64_t N) {
  std::vector<float> packed(kiln_uk_packed_b_size(K, N), kNaN);
  kiln_uk_pack_b_f32(B.data(), K, N, packed.data());
  return packed;
}

//===-- Math ---------------------------------------------------------------===//

struct MathResult {
  std::vector<float> x, scalar, vector;
};

MathResult Probe(int32_t fn, std::vector<float> x) {
  MathResult r{std::move(x), {}, {}};
  r.scalar.assign(r.x.size(), kNaN);
  r.vector.assign(r.x.size(), kNaN);
  kiln_uk_probe_math(fn, r.x.data(), static_cast<int64_t>(r.x.size()), r.scalar.data(),
                     r.vector.data());
  return r;
}

std::vector<float> Linspace(float lo, float hi, int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = lo + (hi - lo) * static_cast<float>(i) / (n - 1);
  return v;
}

// |got - ref| <= tol(x, ref) for every element, scalar and vector forms.
void ExpectPointwise(const MathResult &r, double (*ref)(double), double (*tol)(double, double),
                     const char *what) {
  int failures = 0;
  for (size_t i = 0; i < r.x.size() && failures < 5; ++i) {
    double want = ref(r.x[i]);
    for (float got : {r.scalar[i], r.vector[i]}) {
      double err = std::fabs(static_cast<double>(got) - want);
      if (!(err <= tol(r.x[i], want))) {
        ++failures;
        ADD_FAILURE() << what << "(" << r.x[i] << ") = " << got << ", want " << want
                      << " (relative error " << err / std::fabs(want) << ")";
      }
    }
  }
}

// Where a result is e^(-a) for a large a computed in f32, rounding a costs
// |a| * 6e-8 relative: the tolerances below grow with that argument.
double GeluTanhArg(double x) {
  return 2.0 * std::sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
}

TEST(UkMath, ExpIsWithinTwoUlpOverTheWholeRange) {
  MathResult r = Probe(KILN_UK_PROBE_EXP, Linspace(-87.3f, 88.7f, 200001));
  ExpectPointwise(
      r, [](double x) { return std::exp(x); }, [](double, double y) { return 2.4e-7 * y; }, "exp");
}

TEST(UkMath, ExpHandlesDenormalsInfinitiesAndNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  MathResult r = Probe(KILN_UK_PROBE_EXP, {-inf, -1000.0f, -104.5f, -100.0f, -90.0f, 0.0f, 88.8f,
                                           100.0f, inf, kNaN});
  for (const auto *out : {&r.scalar, &r.vector}) {
    const auto &y = *out;
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_EQ(y[1], 0.0f);
    EXPECT_EQ(y[2], 0.0f);
    EXPECT_NEAR(y[3], std::exp(-100.0), 3e-45);  // denormal: absolute error of a few ulp
    EXPECT_NEAR(y[4], std::exp(-90.0), 3e-45);
    EXPECT_EQ(y[5], 1.0f);
    EXPECT_EQ(y[6], inf);
    EXPECT_EQ(y[7], inf);
    EXPECT_EQ(y[8], inf);
    EXPECT_TRUE(std::isnan(y[9]));
  }
}

TEST(UkMath, ScalarAndVectorFormsAgree) {
  std::mt19937 rng(7);
  for (int32_t fn = KILN_UK_PROBE_EXP; fn <= KILN_UK_PROBE_GELU_ERF; ++fn) {
    MathResult r = Probe(fn, Random(1000, rng, -30.0f, 30.0f));
    for (size_t i = 0; i < r.x.size(); ++i) {
      ASSERT_NEAR(r.scalar[i], r.vector[i], 2e-7 * std::fabs(r.scalar[i]) + 1e-30)
          << "function " << fn << " at " << r.x[i];
    }
  }
}

TEST(UkMath, TanhSigmoidErfc) {
  ExpectPointwise(
      Probe(KILN_UK_PROBE_TANH, Linspace(-12.0f, 12.0f, 100001)),
      [](double x) { return std::tanh(x); },
      [](double, double y) { return 4e-7 * std::fabs(y) + 1e-37; }, "tanh");
  ExpectPointwise(
      Probe(KILN_UK_PROBE_SIGMOID, Linspace(-80.0f, 40.0f, 100001)),
      [](double x) { return 1.0 / (1.0 + std::exp(-x)); },
      [](double, double y) { return 5e-7 * y + 1e-37; }, "sigmoid");
  ExpectPointwise(
      Probe(KILN_UK_PROBE_ERFC, Linspace(-6.0f, 9.0f, 100001)),
      [](double x) { return std::erfc(x); },
      [](double z, double y) { return (3e-7 + 1.5e-7 * z * z) * y + 1e-37; }, "erfc");
}

TEST(UkMath, Activations) {
  ExpectPointwise(
      Probe(KILN_UK_PROBE_SILU, Linspace(-60.0f, 60.0f, 100001)),
      [](double x) { return ActRef(x, KILN_UK_ACT_SILU); },
      [](double, double y) { return 5e-7 * std::fabs(y) + 1e-37; }, "silu");
  ExpectPointwise(
      Probe(KILN_UK_PROBE_GELU_TANH, Linspace(-12.0f, 12.0f, 100001)),
      [](double x) { return ActRef(x, KILN_UK_ACT_GELU_TANH); },
      [](double x, double y) {
        return (4e-7 + 2e-7 * std::fabs(GeluTanhArg(x))) * std::fabs(y) + 1e-37;
      },
      "gelu_tanh");
  ExpectPointwise(
      Probe(KILN_UK_PROBE_GELU_ERF, Linspace(-9.0f, 12.0f, 100001)),
      [](double x) { return ActRef(x, KILN_UK_ACT_GELU_ERF); },
      [](double x, double y) { return (5e-7 + 1.5e-7 * x * x) * std::fabs(y) + 1e-37; },
      "gelu_erf");
}

//===-- Packing ------------------------------------------------------------===//

TEST(UkPack, SizeIsPanelsOfSixteen) {
  EXPECT_EQ(kiln_uk_packed_b_size(3, 1), 48);
  EXPECT_EQ(kiln_uk_packed_b_size(3, 16), 48);
  EXPECT_EQ(kiln_uk_packed_b_size(3, 17), 96);
  EXPECT_EQ(kiln_uk_packed_b_size(0, 17), 0);
  EXPECT_EQ(kiln_uk_packed_b_size(5, 0), 0);
}

TEST(UkPack, BAndBTransposedGiveTheDocumentedLayout) {
  std::mt19937 rng(1);
  for (auto [K, N] : {std::pair<int64_t, int64_t>{1, 1}, {7, 16}, {33, 17}, {20, 50}}) {
    std::vector<float> B = Random(K * N, rng), BT(N * K);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) BT[n * K + k] = B[k * N + n];
    std::vector<float> p1 = Pack(B, K, N), p2(p1.size(), kNaN);
    kiln_uk_pack_bt_f32(BT.data(), K, N, p2.data());
    for (int64_t p = 0; p * 16 < N; ++p)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < 16; ++j) {
          int64_t n = 16 * p + j;
          float want = n < N ? B[k * N + n] : 0.0f;
          ASSERT_EQ(p1[(p * K + k) * 16 + j], want) << "pack_b K=" << K << " N=" << N;
          ASSERT_EQ(p2[(p * K + k) * 16 + j], want) << "pack_bt K=" << K << " N=" << N;
        }
  }
}

//===-- Matmul -------------------------------------------------------------===//

struct MatmulCase {
  int64_t M, K, N;
  int act;
  bool bias, residual, alias;
};

std::string Describe(const MatmulCase &c) {
  return "M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) + " N=" + std::to_string(c.N) +
         " act=" + std::to_string(c.act) + (c.bias ? " bias" : "") +
         (c.residual ? (c.alias ? " residual aliasing C" : " residual") : "");
}

std::vector<double> MatmulRef(const std::vector<float> &A, const std::vector<float> &B,
                              int64_t M, int64_t K, int64_t N) {
  std::vector<double> y(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      double a = A[m * K + k];
      for (int64_t n = 0; n < N; ++n) y[m * N + n] += a * B[k * N + n];
    }
  return y;
}

void CheckMatmul(const MatmulCase &c, std::mt19937 &rng) {
  SCOPED_TRACE(Describe(c));
  std::vector<float> A = Random(c.M * c.K, rng), B = Random(c.K * c.N, rng);
  std::vector<float> bias = Random(c.N, rng), res = Random(c.M * c.N, rng);
  std::vector<float> packed = Pack(B, c.K, c.N);
  std::vector<double> ref = MatmulRef(A, B, c.M, c.K, c.N);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double &y = ref[m * c.N + n];
      y = ActRef(y + (c.bias ? bias[n] : 0.0), c.act) + (c.residual ? res[m * c.N + n] : 0.0);
    }
  for (const Schedule &s : kSchedules) {
    std::vector<float> C(c.M * c.N, kNaN);
    if (c.alias) C = res;
    const float *r = c.residual ? (c.alias ? C.data() : res.data()) : nullptr;
    RunWorkgroups(s, [&](int64_t wg, int64_t count) {
      kiln_uk_matmul_f32(A.data(), c.M, c.K, packed.data(), c.N, c.bias ? bias.data() : nullptr, r,
                         c.act, C.data(), wg, count);
    });
    ExpectClose(C, ref, kTol, Describe(s));
  }
}

TEST(UkMatmul, AwkwardSizesActivationsBiasResidual) {
  std::mt19937 rng(2);
  const std::pair<int64_t, int64_t> kn[] = {{1, 1}, {17, 33}, {64, 100}, {300, 47}, {513, 20}};
  int i = 0;
  for (int64_t M : {1, 2, 5, 7, 12, 31, 64, 100})
    for (auto [K, N] : kn) {
      ++i;
      bool residual = i % 3 != 0;
      CheckMatmul({M, K, N, i % 4, i % 2 == 0, residual, residual && i % 2 == 1}, rng);
    }
}

TEST(UkMatmul, ResidualMayAliasC) {
  std::mt19937 rng(3);
  for (int64_t M : {1, 5, 9, 130})
    CheckMatmul({M, 300, 40, KILN_UK_ACT_SILU, true, true, true}, rng);
}

TEST(UkMatmul, ManyTilesAndKBlocks) {
  std::mt19937 rng(4);
  CheckMatmul({200, 600, 300, KILN_UK_ACT_GELU_TANH, true, true, false}, rng);
}

TEST(UkMatmul, EmptyKGivesActOfBiasPlusResidual) {
  std::mt19937 rng(5);
  CheckMatmul({3, 0, 20, KILN_UK_ACT_GELU_ERF, true, true, false}, rng);
  CheckMatmul({30, 0, 20, KILN_UK_ACT_NONE, true, false, false}, rng);
}

TEST(UkMatmul, WorkgroupOutsideTheCountWritesNothing) {
  std::mt19937 rng(6);
  std::vector<float> A = Random(20 * 30, rng), packed = Pack(Random(30 * 40, rng), 30, 40);
  std::vector<float> C(20 * 40, kNaN);
  kiln_uk_matmul_f32(A.data(), 20, 30, packed.data(), 40, nullptr, nullptr, 0, C.data(), 3, 3);
  kiln_uk_matmul_f32(A.data(), 20, 30, packed.data(), 40, nullptr, nullptr, 0, C.data(), -1, 3);
  kiln_uk_matmul_f32(A.data(), 1, 30, packed.data(), 40, nullptr, nullptr, 0, C.data(), 5, 2);
  for (float x : C) ASSERT_TRUE(std::isnan(x));
}

TEST(UkMatmul, GluMatchesActOfGateTimesUp) {
  std::mt19937 rng(8);
  const std::pair<int64_t, int64_t> kn[] = {{17, 33}, {300, 47}, {64, 16}};
  int i = 0;
  for (int64_t M : {1, 2, 5, 7, 12, 31, 64, 100})
    for (auto [K, N] : kn) {
      int act = (i++) % 4;
      SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" +
                   std::to_string(N) + " act=" + std::to_string(act));
      std::vector<float> A = Random(M * K, rng), G = Random(K * N, rng), U = Random(K * N, rng);
      std::vector<float> pg = Pack(G, K, N), pu = Pack(U, K, N);
      std::vector<double> g = MatmulRef(A, G, M, K, N), u = MatmulRef(A, U, M, K, N);
      for (size_t j = 0; j < g.size(); ++j) g[j] = ActRef(g[j], act) * u[j];
      for (const Schedule &s : kSchedules) {
        std::vector<float> C(M * N, kNaN);
        RunWorkgroups(s, [&](int64_t wg, int64_t count) {
          kiln_uk_matmul_glu_f32(A.data(), M, K, pg.data(), pu.data(), N, act, C.data(), wg, count);
        });
        ExpectClose(C, g, kTol, Describe(s));
      }
    }
}

// Batch invariance: a row's result is bitwise the same whatever M it is
// computed with (the GEMV, the panel streams and the GEMM all sum over k in
// order), on any workgroup count. Continuous batching relies on it.
TEST(UkMatmul, RowsAreBitwiseTheSameForAnyM) {
  std::mt19937 rng(9);
  const int64_t K = 300, N = 200;
  std::vector<float> W = Random(K * N, rng), U = Random(K * N, rng), bias = Random(N, rng);
  std::vector<float> pw = Pack(W, K, N), pu = Pack(U, K, N);
  std::vector<float> A = Random(100 * K, rng);
  auto rows = [&](int64_t M, bool glu, int64_t count) {
    std::vector<float> C(M * N, kNaN);
    for (int64_t wg = 0; wg < count; ++wg) {
      if (glu)
        kiln_uk_matmul_glu_f32(A.data(), M, K, pw.data(), pu.data(), N, 3, C.data(), wg, count);
      else
        kiln_uk_matmul_f32(A.data(), M, K, pw.data(), N, bias.data(), nullptr, 1, C.data(), wg, count);
    }
    return C;
  };
  for (bool glu : {false, true}) {
    std::vector<float> one = rows(1, glu, 1);
    for (int64_t M : {2, 5, 7, 9, 31, 33, 64, 100})
      for (int64_t count : {1, 3}) {
        std::vector<float> many = rows(M, glu, count);
        EXPECT_EQ(std::memcmp(one.data(), many.data(), N * sizeof(float)), 0)
            << "row 0 differs at M=" << M << " count=" << count << (glu ? " (glu)" : "");
      }
  }
}

//===-- Quantized matmul ---------------------------------------------------===//

// A quantized weight: q [K, N] (int8, or 0..15 for 4 bits), f16 scales and
// optional zero points per (group, column), and its value in double.
struct QWeight {
  int64_t K, N, group;
  int32_t bits;
  std::vector<int8_t> q, zp;
  std::vector<uint16_t> scales;
  std::vector<double> value;  // dequantized [K, N]
  std::vector<uint8_t> packed;
};

double HalfToDouble(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

QWeight RandomQWeight(int64_t K, int64_t N, int32_t bits, int64_t group, bool zp, std::mt19937 &rng) {
  QWeight w{K, N, group, bits, {}, {}, {}, {}, {}};
  std::uniform_int_distribution<int> qd(bits == 8 ? -128 : 0, bits == 8 ? 127 : 15);
  std::uniform_int_distribution<int> exp(3, 16), mant(0, 1023), sign(0, 1);
  const int64_t G = K / group;
  w.q.resize(K * N);
  for (auto &x : w.q) x = static_cast<int8_t>(qd(rng));
  w.scales.resize(G * N);
  for (size_t i = 0; i < w.scales.size(); ++i)  // a few subnormal scales too
    w.scales[i] = static_cast<uint16_t>((sign(rng) << 15) | ((i % 97 == 0 ? 0 : exp(rng)) << 10) |
                                        mant(rng));
  if (zp) {
    w.zp.resize(G * N);
    for (auto &x : w.zp) x = static_cast<int8_t>(qd(rng));
  }
  w.value.resize(K * N);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      int64_t g = k / group;
      double z = zp ? w.zp[g * N + n] : 0.0;
      w.value[k * N + n] = (w.q[k * N + n] - z) * HalfToDouble(w.scales[g * N + n]);
    }
  int64_t size = kiln_uk_packed_q_size(K, N, bits, group, zp);
  EXPECT_GT(size, 0);
  w.packed.assign(size, 0xAB);
  kiln_uk_pack_q(w.q.data(), w.scales.data(), zp ? w.zp.data() : nullptr, K, N, bits, group,
                 w.packed.data());
  return w;
}

std::vector<double> QMatmulRef(const std::vector<float> &A, const QWeight &w, int64_t M) {
  std::vector<double> y(M * w.N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < w.K; ++k)
      for (int64_t n = 0; n < w.N; ++n) y[m * w.N + n] += A[m * w.K + k] * w.value[k * w.N + n];
  return y;
}

TEST(UkQMatmul, PackedSizeRefusesLayoutsTheKernelsDoNotTake) {
  EXPECT_EQ(kiln_uk_packed_q_size(64, 20, 8, 64, 0), 2 * (64 * 16 + 32));
  EXPECT_EQ(kiln_uk_packed_q_size(64, 20, 4, 32, 1), 2 * (32 * 16 + 2 * 48));
  EXPECT_EQ(kiln_uk_packed_q_size(64, 20, 4, 24, 1), 0);  // group does not divide K
  EXPECT_EQ(kiln_uk_packed_q_size(60, 20, 4, 12, 0), 0);  // 4 bits: group not a multiple of 8
  EXPECT_EQ(kiln_uk_packed_q_size(64, 20, 2, 32, 0), 0);  // 2 bits
  EXPECT_EQ(kiln_uk_packed_q_size(0, 20, 8, 1, 0), 0);
}

TEST(UkQMatmul, Int8AndInt4AgainstTheDequantizedReference) {
  std::mt19937 rng(21);
  struct Scheme { int32_t bits; int64_t group; bool zp; };
  int i = 0;
  for (Scheme sc : {Scheme{8, 0, false}, Scheme{8, 0, true}, Scheme{8, 32, false},
                    Scheme{4, 32, true}, Scheme{4, 128, true}, Scheme{4, 8, false}})
    for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 33}, {512, 16}, {768, 50}})
      for (int64_t M : {1, 2, 7, 31, 100}) {
        ++i;
        int64_t group = sc.group ? sc.group : K;
        SCOPED_TRACE("bits=" + std::to_string(sc.bits) + " group=" + std::to_string(group) +
                     (sc.zp ? " zp" : "") + " M=" + std::to_string(M) + " K=" + std::to_string(K) +
                     " N=" + std::to_string(N));
        QWeight w = RandomQWeight(K, N, sc.bits, group, sc.zp, rng);
        std::vector<float> A = Random(M * K, rng), bias = Random(N, rng), res = Random(M * N, rng);
        int act = i % 4;
        bool with_bias = i % 2 == 0, with_res = i % 3 != 0;
        std::vector<double> ref = QMatmulRef(A, w, M);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double &y = ref[m * N + n];
            y = ActRef(y + (with_bias ? bias[n] : 0.0), act) + (with_res ? res[m * N + n] : 0.0);
          }
        for (const Schedule &s : kSchedules) {
          std::vector<float> C(M * N, kNaN);
          RunWorkgroups(s, [&](int64_t wg, int64_t count) {
            kiln_uk_matmul_q_f32(A.data(), M, K, w.packed.data(), N, sc.bits, group, sc.zp,
                                 with_bias ? bias.data() : nullptr, with_res ? res.data() : nullptr,
                                 act, C.data(), wg, count);
          });
          ExpectClose(C, ref, kTol, Describe(s));
        }
      }
}

TEST(UkQMatmul, GluOfTwoQuantizedWeights) {
  std::mt19937 rng(22);
  for (int32_t bits : {8, 4})
    for (int64_t M : {1, 3, 40}) {
      const int64_t K = 256, N = 70, group = bits == 8 ? K : 32;
      QWeight g = RandomQWeight(K, N, bits, group, bits == 4, rng);
      QWeight u = RandomQWeight(K, N, bits, group, bits == 4, rng);
      std::vector<float> A = Random(M * K, rng);
      std::vector<double> rg = QMatmulRef(A, g, M), ru = QMatmulRef(A, u, M);
      for (size_t j = 0; j < rg.size(); ++j) rg[j] = ActRef(rg[j], KILN_UK_ACT_SILU) * ru[j];
      for (const Schedule &s : kSchedules) {
        std::vector<float> C(M * N, kNaN);
        RunWorkgroups(s, [&](int64_t wg, int64_t count) {
          kiln_uk_matmul_glu_q_f32(A.data(), M, K, g.packed.data(), u.packed.data(), N, bits, group,
                                   bits == 4, KILN_UK_ACT_SILU, C.data(), wg, count);
        });
        ExpectClose(C, rg, kTol, "bits=" + std::to_string(bits) + " M=" + std::to_string(M) +
                                     " " + Describe(s));
      }
    }
}

// As for the f32 matmul: a row decodes the same alone or batched.
TEST(UkQMatmul, RowsAreBitwiseTheSameForAnyM) {
  std::mt19937 rng(23);
  const int64_t K = 512, N = 90;
  std::vector<float> A = Random(130 * K, rng);
  for (int32_t bits : {8, 4}) {
    const int64_t group = bits == 8 ? K : 32;
    QWeight w = RandomQWeight(K, N, bits, group, bits == 4, rng);
    QWeight u = RandomQWeight(K, N, bits, group, bits == 4, rng);
    auto rows = [&](int64_t M, bool glu, int64_t count) {
      std::vector<float> C(M * N, kNaN);
      for (int64_t wg = 0; wg < count; ++wg) {
        if (glu)
          kiln_uk_matmul_glu_q_f32(A.data(), M, K, w.packed.data(), u.packed.data(), N, bits,
                                   group, bits == 4, 2, C.data(), wg, count);
        else
          kiln_uk_matmul_q_f32(A.data(), M, K, w.packed.data(), N, bits, group, bits == 4, nullptr,
                               nullptr, 0, C.data(), wg, count);
      }
      return C;
    };
    for (bool glu : {false, true}) {
      std::vector<float> one = rows(1, glu, 1);
      for (int64_t M : {2, 6, 9, 32, 97, 130})
        for (int64_t count : {1, 4}) {
          std::vector<float> many = rows(M, glu, count);
          EXPECT_EQ(std::memcmp(one.data(), many.data(), N * sizeof(float)), 0)
              << "row 0 differs at bits=" << bits << " M=" << M << " count=" << count
              << (glu ? " (glu)" : "");
        }
    }
  }
}

//===-- w8a8 matmul (int8 weights x int8 activations) ----------------------===//

// A w8a8 weight: q [K, N] in [-127, 127], f16 column scales, packed.
struct Q8A8Weight {
  int64_t K, N;
  std::vector<int8_t> q;
  std::vector<uint16_t> scales;
  std::vector<uint8_t> packed;
};

Q8A8Weight RandomQ8A8Weight(int64_t K, int64_t N, std::mt19937 &rng) {
  Q8A8Weight w{K, N, {}, {}, {}};
  std::uniform_int_distribution<int> qd(-127, 127), exp(3, 16), mant(0, 1023), sign(0, 1);
  w.q.resize(K * N);
  for (auto &x : w.q) x = static_cast<int8_t>(qd(rng));
  w.scales.resize(N);
  for (size_t i = 0; i < w.scales.size(); ++i)  // a few subnormal scales too
    w.scales[i] = static_cast<uint16_t>((sign(rng) << 15) | ((i % 13 == 5 ? 0 : exp(rng)) << 10) |
                                        mant(rng));
  int64_t size = kiln_uk_packed_q8a8_size(K, N);
  EXPECT_GT(size, 0);
  w.packed.assign(size, 0xAB);
  kiln_uk_pack_q8a8(w.q.data(), w.scales.data(), K, N, w.packed.data());
  return w;
}

// The documented semantics, scalar, in f32: ((float)acc * s_a) * s_w[n].
std::vector<float> Q8A8PreActRef(const std::vector<float> &A, int64_t M, const Q8A8Weight &w) {
  const int64_t K = w.K, N = w.N;
  std::vector<float> y(M * N);
  std::vector<int32_t> qa(K);
  for (int64_t m = 0; m < M; ++m) {
    const float *x = A.data() + m * K;
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
    float sa = 1.0f, inv = 0.0f;
    if (amax > 0.0f) {
      sa = amax / 127.0f;
      inv = 127.0f / amax;
    }
    for (int64_t k = 0; k < K; ++k) {
      float v = x[k] * inv;
      qa[k] = static_cast<int32_t>(std::clamp(std::round(v), -127.0f, 127.0f));
    }
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += qa[k] * w.q[k * N + n];
      float sw = static_cast<float>(HalfToDouble(w.scales[n]));
      float t = static_cast<float>(acc) * sa;
      y[m * N + n] = t * sw;
    }
  }
  return y;
}

// The ukernels' own activation (uk_math.h's 16-lane form), so that the
// reference is bitwise comparable.
std::vector<float> UkAct(std::vector<float> x, int act) {
  int32_t fn = act == KILN_UK_ACT_GELU_TANH ? KILN_UK_PROBE_GELU_TANH
               : act == KILN_UK_ACT_SILU    ? KILN_UK_PROBE_SILU
               : act == KILN_UK_ACT_GELU_ERF ? KILN_UK_PROBE_GELU_ERF
                                             : -1;
  if (fn < 0) return x;
  return Probe(fn, std::move(x)).vector;
}

std::vector<float> Q8A8Ref(const std::vector<float> &A, int64_t M, const Q8A8Weight &w,
                           const float *bias, const float *res, int act) {
  std::vector<float> y = Q8A8PreActRef(A, M, w);
  if (bias)
    for (int64_t i = 0; i < M * w.N; ++i) y[i] += bias[i % w.N];
  y = UkAct(std::move(y), act);
  if (res)
    for (int64_t i = 0; i < M * w.N; ++i) y[i] += res[i];
  return y;
}

void ExpectBitwise(const std::vector<float> &got, const std::vector<float> &ref,
                   const std::string &what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &ref[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", reference " << ref[i];
      return;
    }
}

using Q8A8Fn = void (*)(const float *, int64_t, int64_t, const uint8_t *, int64_t, const float *,
                        const float *, int32_t, float *, int64_t, int64_t);
using Q8A8GluFn = void (*)(const float *, int64_t, int64_t, const uint8_t *, const uint8_t *,
                           int64_t, int32_t, float *, int64_t, int64_t);
struct Q8A8Variant {
  const char *name;
  Q8A8Fn fn;
  Q8A8GluFn glu;
};

// The generic kernel, and the AVX2 one where this CPU runs it (the
// aarch64 dotprod one is checked under qemu, test/e2e).
std::vector<Q8A8Variant> Q8A8Variants() {
  std::vector<Q8A8Variant> v{{"generic", kiln_uk_matmul_q8a8_f32, kiln_uk_matmul_glu_q8a8_f32}};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2"))
    v.push_back({"avx2", kiln_uk_matmul_q8a8_f32_avx2, kiln_uk_matmul_glu_q8a8_f32_avx2});
#endif
#if defined(KILN_UK_TEST_VNNI_EMULATED)
  // The VNNI loops without AVX-512 (kiln_ukernels_vnni_emulated).
  v.push_back({"vnni (emulated)", kiln_uk_matmul_q8a8_f32_vnni, kiln_uk_matmul_glu_q8a8_f32_vnni});
#elif defined(__x86_64__)
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"))
    v.push_back({"vnni", kiln_uk_matmul_q8a8_f32_vnni, kiln_uk_matmul_glu_q8a8_f32_vnni});
#endif
  return v;
}

TEST(UkQ8A8Matmul, PackedSizeAndLayout) {
  EXPECT_EQ(kiln_uk_packed_q8a8_size(5, 20), 2 * (8 * 16 + 64));
  EXPECT_EQ(kiln_uk_packed_q8a8_size(32768, 16), 32768 * 16 + 64);
  EXPECT_EQ(kiln_uk_packed_q8a8_size(32769, 16), 0);
  EXPECT_EQ(kiln_uk_packed_q8a8_size(0, 16), 0);
  EXPECT_EQ(kiln_uk_packed_q8a8_size(16, 0), 0);
  std::mt19937 rng(40);
  const int64_t K = 5, N = 20, K4 = 8, pb = K4 * 16;
  Q8A8Weight w = RandomQ8A8Weight(K, N, rng);
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t b = 0; b < K4 / 4; ++b)
      for (int64_t j = 0; j < 16; ++j)
        for (int64_t t = 0; t < 4; ++t) {
          int64_t k = 4 * b + t, n = 16 * p + j;
          int8_t want = k < K && n < N ? w.q[k * N + n] : 0;
          EXPECT_EQ(static_cast<int8_t>(w.packed[p * pb + 64 * b + 4 * j + t]), want)
              << "p=" << p << " b=" << b << " j=" << j << " t=" << t;
        }
  for (int64_t n = 0; n < 32; ++n) {
    float s;
    std::memcpy(&s, w.packed.data() + 2 * pb + 4 * n, 4);
    EXPECT_EQ(s, n < N ? static_cast<float>(HalfToDouble(w.scales[n])) : 0.0f) << "scale " << n;
  }
}

TEST(UkQ8A8Matmul, BitwiseEqualToTheScalarDefinition) {
  std::mt19937 rng(41);
  int i = 0;
  for (auto [K, N] : {std::pair<int64_t, int64_t>{1, 1}, {5, 17}, {37, 33}, {130, 70},
                      {1027, 40}})
    for (int64_t M : {1, 3, 7}) {
      ++i;
      SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K) +
                   " N=" + std::to_string(N));
      Q8A8Weight w = RandomQ8A8Weight(K, N, rng);
      std::vector<float> A = Random(M * K, rng, -3.0f, 3.0f), bias = Random(N, rng),
                         res = Random(M * N, rng);
      const int act = i % 4;
      const bool with_bias = i % 2 == 0, with_res = i % 3 != 0;
      std::vector<float> ref = Q8A8Ref(A, M, w, with_bias ? bias.data() : nullptr,
                                       with_res ? res.data() : nullptr, act);
      for (const Q8A8Variant &v : Q8A8Variants())
        for (const Schedule &s : kSchedules) {
          std::vector<float> C(M * N, kNaN);
          RunWorkgroups(s, [&](int64_t wg, int64_t count) {
            v.fn(A.data(), M, K, w.packed.data(), N, with_bias ? bias.data() : nullptr,
                 with_res ? res.data() : nullptr, act, C.data(), wg, count);
          });
          ExpectBitwise(C, ref,
                        std::string(v.name) + " act=" + std::to_string(act) + " " + Describe(s));
        }
      // C == residual
      std::vector<float> C = res;
      kiln_uk_matmul_q8a8_f32(A.data(), M, K, w.packed.data(), N, bias.data(), C.data(), act,
                              C.data(), 0, 1);
      ExpectBitwise(C, Q8A8Ref(A, M, w, bias.data(), res.data(), act), "C == residual");
    }
}

TEST(UkQ8A8Matmul, GluBitwiseEqualToTheScalarDefinition) {
  std::mt19937 rng(42);
  for (auto [K, N] : {std::pair<int64_t, int64_t>{37, 33}, {258, 70}})
    for (int64_t M : {1, 3, 7})
      for (int act : {KILN_UK_ACT_SILU, KILN_UK_ACT_GELU_TANH}) {
        Q8A8Weight g = RandomQ8A8Weight(K, N, rng), u = RandomQ8A8Weight(K, N, rng);
        std::vector<float> A = Random(M * K, rng);
        std::vector<float> ref = UkAct(Q8A8PreActRef(A, M, g), act), up = Q8A8PreActRef(A, M, u);
        for (size_t j = 0; j < ref.size(); ++j) ref[j] *= up[j];
        for (const Q8A8Variant &v : Q8A8Variants())
          for (const Schedule &s : kSchedules) {
            std::vector<float> C(M * N, kNaN);
            RunWorkgroups(s, [&](int64_t wg, int64_t count) {
              v.glu(A.data(), M, K, g.packed.data(), u.packed.data(), N, act, C.data(), wg, count);
            });
            ExpectBitwise(C, ref, std::string(v.name) + " M=" + std::to_string(M) + " K=" +
                                      std::to_string(K) + " act=" + std::to_string(act) + " " +
                                      Describe(s));
          }
      }
}

TEST(UkQ8A8Matmul, CloseToTheFloatProduct) {
  // Quantization error only: per-row int8 activations, int8 weights.
  std::mt19937 rng(43);
  const int64_t M = 5, K = 512, N = 48;
  Q8A8Weight w = RandomQ8A8Weight(K, N, rng);
  std::vector<float> A = Random(M * K, rng);
  std::vector<double> ref(M * N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n)
        ref[m * N + n] += A[m * K + k] * w.q[k * N + n] * HalfToDouble(w.scales[n]);
  std::vector<float> C(M * N, kNaN);
  kiln_uk_matmul_q8a8_f32(A.data(), M, K, w.packed.data(), N, nullptr, nullptr, 0, C.data(), 0, 1);
  ExpectClose(C, ref, 2e-2, "w8a8 vs f32");
}

// Weights of -128 (an imported int8 weight may hold them) against negative
// inputs: every variant's integer sums stay exact.
TEST(UkQ8A8Matmul, WeightsOfMinus128AreExactInEveryVariant) {
  std::mt19937 rng(46);
  for (int64_t M : {1, 3}) {
    const int64_t K = 67, N = 21;
    Q8A8Weight w = RandomQ8A8Weight(K, N, rng);
    for (size_t i = 0; i < w.q.size(); i += 3) w.q[i] = -128;
    kiln_uk_pack_q8a8(w.q.data(), w.scales.data(), K, N, w.packed.data());
    std::vector<float> A = Random(M * K, rng, -3.0f, 0.0f);
    std::vector<float> ref = Q8A8Ref(A, M, w, nullptr, nullptr, 0);
    for (const Q8A8Variant &v : Q8A8Variants()) {
      std::vector<float> C(M * N, kNaN);
      v.fn(A.data(), M, K, w.packed.data(), N, nullptr, nullptr, 0, C.data(), 0, 1);
      ExpectBitwise(C, ref, std::string(v.name) + " M=" + std::to_string(M));
    }
  }
}

TEST(UkQ8A8Matmul, RoundsHalfAwayFromZeroAndClamps) {
  // Identity weight with scale 1: the output is qa * s_a, and s_a = 1 here
  // (amax = 127).
  const int64_t K = 9, N = 9;
  Q8A8Weight w{K, N, std::vector<int8_t>(K * N, 0), std::vector<uint16_t>(N, 0x3C00), {}};
  for (int64_t k = 0; k < K; ++k) w.q[k * N + k] = 1;
  w.packed.assign(kiln_uk_packed_q8a8_size(K, N), 0);
  kiln_uk_pack_q8a8(w.q.data(), w.scales.data(), K, N, w.packed.data());
  std::vector<float> A = {127.0f, 0.5f, -0.5f, 1.5f, -2.5f, 0.49999997f, 126.5f, -126.5f, -127.0f};
  std::vector<float> want = {127, 1, -1, 2, -3, 0, 127, -127, -127};
  std::vector<float> C(N, kNaN);
  kiln_uk_matmul_q8a8_f32(A.data(), 1, K, w.packed.data(), N, nullptr, nullptr, 0, C.data(), 0, 1);
  ExpectBitwise(C, want, "rounding");
}

TEST(UkQ8A8Matmul, ZeroRowGivesExactlyTheBias) {
  std::mt19937 rng(44);
  const int64_t M = 3, K = 100, N = 37;
  Q8A8Weight w = RandomQ8A8Weight(K, N, rng);
  std::vector<float> A = Random(M * K, rng), bias = Random(N, rng);
  std::fill(A.begin() + K, A.begin() + 2 * K, 0.0f);  // row 1
  for (int64_t rows : {int64_t{1}, M}) {
    const float *a = rows == 1 ? A.data() + K : A.data();
    std::vector<float> C(rows * N, kNaN);
    kiln_uk_matmul_q8a8_f32(a, rows, K, w.packed.data(), N, bias.data(), nullptr, 0, C.data(), 0,
                            1);
    std::vector<float> row(C.begin() + (rows == 1 ? 0 : N), C.begin() + (rows == 1 ? N : 2 * N));
    ExpectBitwise(row, bias, "M=" + std::to_string(rows));
  }
}

// A row's result is the same alone or batched, with any number of
// workgroups (K = 32768 takes several row chunks).
TEST(UkQ8A8Matmul, RowsAreBitwiseTheSameForAnyMAndCount) {
  std::mt19937 rng(45);
  for (auto [K, N] : {std::pair<int64_t, int64_t>{1000, 90}, {32768, 20}}) {
    const int64_t M = 7;
    Q8A8Weight g = RandomQ8A8Weight(K, N, rng), u = RandomQ8A8Weight(K, N, rng);
    std::vector<float> A = Random(M * K, rng), bias = Random(N, rng);
    auto run = [&](const float *a, int64_t rows, bool glu, int64_t count) {
      std::vector<float> C(rows * N, kNaN);
      for (int64_t wg = 0; wg < count; ++wg) {
        if (glu)
          kiln_uk_matmul_glu_q8a8_f32(a, rows, K, g.packed.data(), u.packed.data(), N,
                                      KILN_UK_ACT_SILU, C.data(), wg, count);
        else
          kiln_uk_matmul_q8a8_f32(a, rows, K, g.packed.data(), N, bias.data(), nullptr,
                                  KILN_UK_ACT_GELU_ERF, C.data(), wg, count);
      }
      return C;
    };
    for (bool glu : {false, true}) {
      std::vector<float> all = run(A.data(), M, glu, 1);
      EXPECT_EQ(all, run(A.data(), M, glu, 3)) << "count 3, K=" << K << (glu ? " (glu)" : "");
      for (int64_t r = 0; r < M; ++r) {
        std::vector<float> one = run(A.data() + r * K, 1, glu, 1);
        EXPECT_EQ(std::memcmp(one.data(), all.data() + r * N, N * sizeof(float)), 0)
            << "row " << r << " K=" << K << (glu ? " (glu)" : "");
      }
    }
  }
}

//===-- int4 weights x int8 activations per group ("w4gNa8") --------------===//

// The documented semantics in double after the exact integer part: each
// group of a row quantized as the kernel does (f32 scale and rounding),
// v = sum qa q - z sum qa, y = sum_g s (v s_a).
std::vector<double> QA8Ref(const std::vector<float> &A, int64_t M, const QWeight &w) {
  const int64_t K = w.K, N = w.N, group = w.group, G = K / group;
  std::vector<double> y(M * N, 0.0);
  std::vector<int32_t> qa(K);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < G; ++g) {
      const float *x = A.data() + m * K + g * group;
      float amax = 0.0f;
      for (int64_t k = 0; k < group; ++k) amax = std::max(amax, std::fabs(x[k]));
      float sa = 1.0f, inv = 0.0f;
      if (amax > 0.0f) sa = amax / 127.0f, inv = 127.0f / amax;
      int32_t sum = 0;
      for (int64_t k = 0; k < group; ++k) {
        qa[k] = static_cast<int32_t>(std::clamp(std::round(x[k] * inv), -127.0f, 127.0f));
        sum += qa[k];
      }
      for (int64_t n = 0; n < N; ++n) {
        int32_t v = 0;
        for (int64_t k = 0; k < group; ++k) v += qa[k] * w.q[(g * group + k) * N + n];
        if (!w.zp.empty()) v -= w.zp[g * N + n] * sum;
        y[m * N + n] += HalfToDouble(w.scales[g * N + n]) * (static_cast<float>(v) * sa);
      }
    }
  return y;
}

using QA8Fn = void (*)(const float *, int64_t, int64_t, const uint8_t *, int64_t, int32_t, int64_t,
                       int32_t, const float *, const float *, int32_t, float *, int64_t, int64_t);
using QA8GluFn = void (*)(const float *, int64_t, int64_t, const uint8_t *, const uint8_t *,
                          int64_t, int32_t, int64_t, int32_t, int32_t, float *, int64_t, int64_t);

struct QA8Variant {
  const char *name;
  QA8Fn fn;
  QA8GluFn glu;
};

// The generic kernel, and the AVX2 one where this CPU runs it.
std::vector<QA8Variant> QA8Variants() {
  std::vector<QA8Variant> v{{"generic", kiln_uk_matmul_qa8_f32, kiln_uk_matmul_glu_qa8_f32}};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"))
    v.push_back({"avx2", kiln_uk_matmul_qa8_f32_avx2, kiln_uk_matmul_glu_qa8_f32_avx2});
#endif
#if defined(KILN_UK_TEST_VNNI_EMULATED)
  // The VNNI loops without AVX-512 (kiln_ukernels_vnni_emulated).
  v.push_back({"vnni (emulated)", kiln_uk_matmul_qa8_f32_vnni, kiln_uk_matmul_glu_qa8_f32_vnni});
#elif defined(__x86_64__) && defined(__FMA__)
  // The twin is built for AVX-512, which brings FMA: next to kernels built
  // without it (the baseline test build) its f32 epilogue contracts
  // differently. kiln-compile gives every kernel the target's features, as
  // -march=native does here.
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"))
    v.push_back({"vnni", kiln_uk_matmul_qa8_f32_vnni, kiln_uk_matmul_glu_qa8_f32_vnni});
#endif
  return v;
}

TEST(UkQA8Matmul, AgainstTheQuantizedDefinition) {
  std::mt19937 rng(50);
  int i = 0;
  for (auto [group, zp] : {std::pair<int64_t, bool>{32, true}, {128, true}, {8, false}, {40, true}})
    for (auto [K, N] : {std::pair<int64_t, int64_t>{640, 33}, {1280, 16}})
      for (int64_t M : {1, 2, 5, 31}) {
        ++i;
        SCOPED_TRACE("group=" + std::to_string(group) + (zp ? " zp" : "") + " M=" +
                     std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N));
        QWeight w = RandomQWeight(K, N, 4, group, zp, rng);
        std::vector<float> A = Random(M * K, rng, -3.0f, 3.0f), bias = Random(N, rng),
                           res = Random(M * N, rng);
        const int act = i % 4;
        const bool with_bias = i % 2 == 0, with_res = i % 3 != 0;
        std::vector<double> ref = QA8Ref(A, M, w);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double &y = ref[m * N + n];
            y = ActRef(y + (with_bias ? bias[n] : 0.0), act) + (with_res ? res[m * N + n] : 0.0);
          }
        for (const QA8Variant &v : QA8Variants())
          for (const Schedule &s : kSchedules) {
            std::vector<float> C(M * N, kNaN);
            RunWorkgroups(s, [&](int64_t wg, int64_t count) {
              v.fn(A.data(), M, K, w.packed.data(), N, 4, group, zp,
                   with_bias ? bias.data() : nullptr, with_res ? res.data() : nullptr, act,
                   C.data(), wg, count);
            });
            ExpectClose(C, ref, kTol, std::string(v.name) + " " + Describe(s));
          }
      }
}

TEST(UkQA8Matmul, CloseToTheFloatProductAndRefusesInt8Weights) {
  // Only the activations' rounding separates it from the f32-input kernel.
  std::mt19937 rng(51);
  const int64_t M = 3, K = 512, N = 48, group = 32;
  QWeight w = RandomQWeight(K, N, 4, group, true, rng);
  std::vector<float> A = Random(M * K, rng);
  std::vector<float> C(M * N, kNaN);
  kiln_uk_matmul_qa8_f32(A.data(), M, K, w.packed.data(), N, 4, group, 1, nullptr, nullptr, 0,
                         C.data(), 0, 1);
  ExpectClose(C, QMatmulRef(A, w, M), 2e-2, "w4a8 vs f32 inputs");
  QWeight w8 = RandomQWeight(K, N, 8, group, false, rng);
  std::vector<float> untouched(M * N, kNaN);
  kiln_uk_matmul_qa8_f32(A.data(), M, K, w8.packed.data(), N, 8, group, 0, nullptr, nullptr, 0,
                         untouched.data(), 0, 1);
  EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](float x) { return std::isnan(x); }))
      << "int8 weights are not this kernel's";
}

TEST(UkQA8Matmul, GluAgainstTheQuantizedDefinition) {
  std::mt19937 rng(52);
  for (int64_t M : {1, 3, 9}) {
    const int64_t K = 256, N = 70, group = 32;
    QWeight g = RandomQWeight(K, N, 4, group, true, rng), u = RandomQWeight(K, N, 4, group, true, rng);
    std::vector<float> A = Random(M * K, rng);
    std::vector<double> rg = QA8Ref(A, M, g), ru = QA8Ref(A, M, u);
    for (size_t j = 0; j < rg.size(); ++j) rg[j] = ActRef(rg[j], KILN_UK_ACT_SILU) * ru[j];
    for (const QA8Variant &v : QA8Variants())
      for (const Schedule &s : kSchedules) {
        std::vector<float> C(M * N, kNaN);
        RunWorkgroups(s, [&](int64_t wg, int64_t count) {
          v.glu(A.data(), M, K, g.packed.data(), u.packed.data(), N, 4, group, 1,
                KILN_UK_ACT_SILU, C.data(), wg, count);
        });
        ExpectClose(C, rg, kTol, std::string(v.name) + " M=" + std::to_string(M) + " " + Describe(s));
      }
  }
}

// A row decodes the same alone or batched, with any workgroup count and
// with either inner loop (exact integer sums, one f32 expression after).
TEST(UkQA8Matmul, RowsAreBitwiseTheSameForAnyMCountAndVariant) {
  std::mt19937 rng(53);
  for (auto [K, group] : {std::pair<int64_t, int64_t>{1024, 32}, {4096, 128}, {65536, 32}}) {
    const int64_t M = 7, N = 40;
    QWeight g = RandomQWeight(K, N, 4, group, true, rng), u = RandomQWeight(K, N, 4, group, true, rng);
    std::vector<float> A = Random(M * K, rng), bias = Random(N, rng);
    auto run = [&](const QA8Variant &v, const float *a, int64_t rows, bool glu, int64_t count) {
      std::vector<float> C(rows * N, kNaN);
      for (int64_t wg = 0; wg < count; ++wg) {
        if (glu)
          v.glu(a, rows, K, g.packed.data(), u.packed.data(), N, 4, group, 1, KILN_UK_ACT_SILU,
                C.data(), wg, count);
        else
          v.fn(a, rows, K, g.packed.data(), N, 4, group, 1, bias.data(), nullptr,
               KILN_UK_ACT_GELU_ERF, C.data(), wg, count);
      }
      return C;
    };
    const QA8Variant generic = QA8Variants().front();
    for (bool glu : {false, true}) {
      const std::vector<float> all = run(generic, A.data(), M, glu, 1);
      for (const QA8Variant &v : QA8Variants()) {
        const std::string what = std::string(v.name) + " K=" + std::to_string(K) + (glu ? " (glu)" : "");
        EXPECT_EQ(all, run(v, A.data(), M, glu, 3)) << "count 3, " << what;
        for (int64_t r = 0; r < M; ++r) {
          std::vector<float> one = run(v, A.data() + r * K, 1, glu, 1);
          EXPECT_EQ(std::memcmp(one.data(), all.data() + r * N, N * sizeof(float)), 0)
              << "row " << r << " " << what;
        }
      }
    }
  }
}

//===-- Norms --------------------------------------------------------------===//

TEST(UkNorm, RmsNormAndLayerNorm) {
  std::mt19937 rng(9);
  for (int64_t rows : {1, 3, 8})
    for (int64_t D : {1, 15, 16, 17, 100, 1000})
      for (int variant = 0; variant < 4; ++variant) {
        const bool layer = variant & 1, with_b = variant & 2, alias = (rows + D) % 2 == 0;
        SCOPED_TRACE(std::string(layer ? "layer_norm" : "rms_norm") + " rows=" +
                     std::to_string(rows) + " D=" + std::to_string(D) + (with_b ? " bias" : "") +
                     (alias ? " in place" : ""));
        std::vector<float> x = Random(rows * D, rng, -3.0f, 5.0f), w = Random(D, rng),
                           b = Random(D, rng);
        const float eps = 1e-5f;
        std::vector<double> ref(rows * D);
        for (int64_t r = 0; r < rows; ++r) {
          double mean = 0, var = 0;
          for (int64_t i = 0; i < D; ++i) mean += x[r * D + i];
          mean = layer ? mean / D : 0.0;
          for (int64_t i = 0; i < D; ++i) var += (x[r * D + i] - mean) * (x[r * D + i] - mean);
          double inv = 1.0 / std::sqrt(var / D + eps);
          for (int64_t i = 0; i < D; ++i)
            ref[r * D + i] = (x[r * D + i] - mean) * inv * w[i] + (layer && with_b ? b[i] : 0.0);
        }
        for (const Schedule &s : kSchedules) {
          std::vector<float> out(rows * D, kNaN);
          if (alias) out = x;
          const float *in = alias ? out.data() : x.data();
          RunWorkgroups(s, [&](int64_t wg, int64_t count) {
            if (layer)
              kiln_uk_layer_norm_f32(in, rows, D, w.data(), with_b ? b.data() : nullptr, eps,
                                     out.data(), wg, count);
            else
              kiln_uk_rms_norm_f32(in, rows, D, w.data(), eps, out.data(), wg, count);
          });
          ExpectClose(out, ref, kTol, Describe(s));
        }
      }
}

//===-- Rotary -------------------------------------------------------------===//

TEST(UkRotary, RotateHalfWithClampedPositions) {
  std::mt19937 rng(10);
  const int64_t B = 2, H = 3, max_pos = 16;
  for (int64_t S : {1, 5})
    for (int64_t hd : {32, 64, 80, 6, 7}) {
      const bool alias = S == 5;
      SCOPED_TRACE("S=" + std::to_string(S) + " hd=" + std::to_string(hd) +
                   (alias ? " in place" : ""));
      std::vector<float> x = Random(B * H * S * hd, rng), cs = Random(max_pos * hd, rng),
                         sn = Random(max_pos * hd, rng);
      std::vector<int64_t> pos(B * S);
      for (int64_t i = 0; i < B * S; ++i) pos[i] = (i * 7) % 20 - 2;  // -2 .. 17: some clamp
      std::vector<double> ref(x.size());
      const int64_t half = hd / 2;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t s = 0; s < S; ++s) {
            int64_t p = std::clamp<int64_t>(pos[b * S + s], 0, max_pos - 1);
            const float *xr = &x[((b * H + h) * S + s) * hd];
            double *o = &ref[((b * H + h) * S + s) * hd];
            for (int64_t i = 0; i < hd; ++i) {
              double rot = i < half ? -xr[i + half] : (i < 2 * half ? xr[i - half] : 0.0);
              o[i] = xr[i] * cs[p * hd + i] + rot * sn[p * hd + i];
            }
          }
      for (const Schedule &s : kSchedules) {
        std::vector<float> out(x.size(), kNaN);
        if (alias) out = x;
        const float *in = alias ? out.data() : x.data();
        RunWorkgroups(s, [&](int64_t wg, int64_t count) {
          kiln_uk_rotary_f32(in, B, H, S, hd, cs.data(), sn.data(), max_pos, pos.data(),
                             out.data(), wg, count);
        });
        ExpectClose(out, ref, kTol, Describe(s));
      }
    }
}

//===-- Attention ----------------------------------------------------------===//

struct AttentionCase {
  int64_t B, H, KVH, S, T, hd;
  bool causal;
  int mask;  // 0 none, 1 random zeros, 2 batch 0 fully masked
};

std::string Describe(const AttentionCase &c) {
  return "B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) + " KVH=" +
         std::to_string(c.KVH) + " S=" + std::to_string(c.S) + " T=" + std::to_string(c.T) +
         " hd=" + std::to_string(c.hd) + (c.causal ? " causal" : "") +
         (c.mask == 1 ? " mask" : c.mask == 2 ? " batch 0 masked" : "");
}

std::vector<double> AttentionRef(const AttentionCase &c, const std::vector<float> &q,
                                 const std::vector<float> &k, const std::vector<float> &v,
                                 const int64_t *mask, float scale) {
  std::vector<double> out(c.B * c.H * c.S * c.hd, 0.0);
  const int64_t g = std::max<int64_t>(c.H / c.KVH, 1);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t kvh = std::min(h / g, c.KVH - 1);
      for (int64_t s = 0; s < c.S; ++s) {
        const float *qr = &q[((b * c.H + h) * c.S + s) * c.hd];
        std::vector<double> sc(c.T, -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.T; ++j) {
          if (c.causal && j > c.T - c.S + s) continue;
          if (mask && mask[b * c.T + j] == 0) continue;
          const float *kr = &k[((b * c.KVH + kvh) * c.T + j) * c.hd];
          double d = 0;
          for (int64_t i = 0; i < c.hd; ++i) d += static_cast<double>(qr[i]) * kr[i];
          sc[j] = scale * d;
          mx = std::max(mx, sc[j]);
        }
        if (mx == -INFINITY) continue;  // no visible key: zeros
        double sum = 0;
        for (double &x : sc) sum += (x = std::exp(x - mx));
        double *o = &out[((b * c.H + h) * c.S + s) * c.hd];
        for (int64_t j = 0; j < c.T; ++j)
          for (int64_t i = 0; i < c.hd; ++i)
            o[i] += sc[j] / sum * v[((b * c.KVH + kvh) * c.T + j) * c.hd + i];
      }
    }
  return out;
}

TEST(UkAttention, CausalMaskedGqaAgainstReference) {
  const AttentionCase cases[] = {
      {1, 4, 4, 1, 1, 32, true, 0},     // first decode step
      {2, 4, 2, 1, 64, 64, true, 1},    // decode with past, GQA 2, mask
      {1, 8, 2, 1, 300, 64, true, 0},   // decode, GQA 4, several key blocks
      {2, 4, 1, 7, 7, 80, true, 0},     // prefill, GQA 4, hd 80
      {1, 4, 4, 70, 103, 32, true, 1},  // several query blocks and key blocks, past 33
      {1, 2, 2, 5, 135, 64, false, 1},  // not causal, mask
      {2, 4, 2, 9, 9, 20, false, 2},    // hd tail, a fully masked batch
      {1, 3, 3, 20, 20, 300, true, 0},  // hd > 256
      {1, 6, 4, 3, 8, 16, true, 0},     // KVH does not divide H
      {1, 2, 4, 2, 5, 16, true, 0},     // more kv heads than heads
      {1, 2, 2, 6, 3, 16, true, 0},     // S > T: the first rows see nothing
      {1, 2, 1, 3, 0, 16, true, 0},     // no keys at all
  };
  std::mt19937 rng(11);
  for (const AttentionCase &c : cases) {
    SCOPED_TRACE(Describe(c));
    std::vector<float> q = Random(c.B * c.H * c.S * c.hd, rng, -2.0f, 2.0f);
    std::vector<float> k = Random(c.B * c.KVH * c.T * c.hd, rng, -2.0f, 2.0f);
    std::vector<float> v = Random(c.B * c.KVH * c.T * c.hd, rng);
    std::vector<int64_t> mask(c.B * c.T, 1);
    for (int64_t i = 0; i < c.B * c.T; ++i) {
      if (c.mask == 1 && rng() % 4 == 0) mask[i] = 0;
      if (c.mask == 2 && i < c.T) mask[i] = 0;
    }
    const int64_t *mp = c.mask ? mask.data() : nullptr;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    std::vector<double> ref = AttentionRef(c, q, k, v, mp, scale);
    for (const Schedule &s : kSchedules) {
      std::vector<float> out(ref.size(), kNaN);
      RunWorkgroups(s, [&](int64_t wg, int64_t count) {
        kiln_uk_attention_f32(q.data(), k.data(), v.data(), mp, c.B, c.H, c.KVH, c.S, c.T, c.hd,
                              scale, c.causal, out.data(), wg, count);
      });
      ExpectClose(out, ref, kTol, Describe(s));
    }
  }
}

TEST(UkAttention, LargeScoresDoNotOverflow) {
  // Scores of several hundred: a softmax without the running max would give inf / inf.
  const AttentionCase c{1, 2, 1, 4, 130, 16, true, 0};
  std::mt19937 rng(12);
  std::vector<float> q = Random(c.H * c.S * c.hd, rng, 4.0f, 6.0f);
  std::vector<float> k = Random(c.KVH * c.T * c.hd, rng, 4.0f, 6.0f);
  std::vector<float> v = Random(c.KVH * c.T * c.hd, rng);
  std::vector<double> ref = AttentionRef(c, q, k, v, nullptr, 1.0f);
  std::vector<float> out(ref.size(), kNaN);
  kiln_uk_attention_f32(q.data(), k.data(), v.data(), nullptr, c.B, c.H, c.KVH, c.S, c.T, c.hd,
                        1.0f, 1, out.data(), 0, 1);
  ExpectClose(out, ref, kTol, "scale 1");
}

// Paged: a flattened batch of sequences whose K/V sit in shuffled pool
// blocks must give, row for row, what the contiguous reference gives each
// sequence alone.
TEST(UkAttention, PagedMatchesContiguousPerSequence) {
  struct Seq {
    int64_t S, T;  // new rows, context (cached + new)
  };
  struct PagedCase {
    int64_t H, KVH, hd, block_size;
    bool causal;
    std::vector<Seq> seqs;
  };
  const PagedCase cases[] = {
      {4, 2, 32, 16, true, {{1, 1}}},                            // first decode step
      {8, 2, 32, 16, true, {{1, 40}, {1, 17}, {1, 16}}},         // decodes across block edges
      {4, 4, 64, 16, true, {{37, 37}, {1, 90}, {5, 21}}},        // prefill + decode + chunked prefill
      {8, 2, 16, 4, true, {{20, 70}}},                           // tiny blocks, many chunks
      {2, 1, 80, 32, true, {{9, 9}, {3, 200}}},                  // hd 80, MQA
      {3, 3, 300, 8, true, {{2, 11}}},                           // hd > 256 (general path)
      {4, 2, 32, 16, false, {{6, 30}}},                          // not causal
  };
  std::mt19937 rng(21);
  for (const PagedCase &c : cases) {
    int64_t N = 0, blocks_needed = 0, M = 0;
    for (const Seq &q : c.seqs) {
      N += q.S;
      int64_t nb = (q.T + c.block_size - 1) / c.block_size;
      blocks_needed += nb;
      M = std::max(M, nb);
    }
    const int64_t num_blocks = blocks_needed + 3;  // a few spare blocks
    std::vector<int32_t> physical(num_blocks);
    std::iota(physical.begin(), physical.end(), 0);
    std::shuffle(physical.begin(), physical.end(), rng);
    const int64_t row = c.KVH * c.hd;
    std::vector<float> kpool = Random(num_blocks * c.block_size * row, rng, -2.0f, 2.0f);
    std::vector<float> vpool = Random(num_blocks * c.block_size * row, rng);
    std::vector<float> q = Random(c.H * N * c.hd, rng, -2.0f, 2.0f);
    const int64_t B = static_cast<int64_t>(c.seqs.size());
    std::vector<int32_t> tables(B * M, -1), seq_lens(B), query_start(B + 1, 0);
    std::vector<double> want(c.H * N * c.hd);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    int64_t next = 0;
    for (int64_t b = 0; b < B; ++b) {
      const Seq &sq = c.seqs[b];
      seq_lens[b] = static_cast<int32_t>(sq.T);
      query_start[b + 1] = static_cast<int32_t>(query_start[b] + sq.S);
      for (int64_t j = 0; j * c.block_size < sq.T; ++j) tables[b * M + j] = physical[next++];
      // The sequence alone, contiguous: gather its K/V out of the pools.
      AttentionCase one{1, c.H, c.KVH, sq.S, sq.T, c.hd, c.causal, 0};
      std::vector<float> k1(c.KVH * sq.T * c.hd), v1(k1.size()), q1(c.H * sq.S * c.hd);
      for (int64_t kvh = 0; kvh < c.KVH; ++kvh)
        for (int64_t j = 0; j < sq.T; ++j) {
          int64_t slot = int64_t{tables[b * M + j / c.block_size]} * c.block_size + j % c.block_size;
          for (int64_t i = 0; i < c.hd; ++i) {
            k1[(kvh * sq.T + j) * c.hd + i] = kpool[slot * row + kvh * c.hd + i];
            v1[(kvh * sq.T + j) * c.hd + i] = vpool[slot * row + kvh * c.hd + i];
          }
        }
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t s = 0; s < sq.S; ++s)
          for (int64_t i = 0; i < c.hd; ++i)
            q1[(h * sq.S + s) * c.hd + i] = q[(h * N + query_start[b] + s) * c.hd + i];
      std::vector<double> ref = AttentionRef(one, q1, k1, v1, nullptr, scale);
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t s = 0; s < sq.S; ++s)
          for (int64_t i = 0; i < c.hd; ++i)
            want[(h * N + query_start[b] + s) * c.hd + i] = ref[(h * sq.S + s) * c.hd + i];
    }
    SCOPED_TRACE("H=" + std::to_string(c.H) + " KVH=" + std::to_string(c.KVH) + " hd=" +
                 std::to_string(c.hd) + " bs=" + std::to_string(c.block_size) + " B=" + std::to_string(B));
    for (const Schedule &s : kSchedules) {
      std::vector<float> out(want.size(), kNaN);
      RunWorkgroups(s, [&](int64_t wg, int64_t count) {
        kiln_uk_paged_attention_f32(q.data(), kpool.data(), vpool.data(), tables.data(), seq_lens.data(),
                                    query_start.data(), B, M, c.H, c.KVH, N, c.hd, num_blocks,
                                    c.block_size, scale, c.causal, out.data(), wg, count);
      });
      ExpectClose(out, want, kTol, Describe(s));
    }
  }
}

// kv8: int8 pools read by the paged kernel give exactly what the f32 kernel
// gives on the same values widened (scale * int8) into f32 pools.
TEST(UkAttention, Int8PoolsMatchTheirWidenedF32Pools) {
  std::mt19937 rng(31);
  std::uniform_int_distribution<int> qd(-127, 127);
  for (int64_t hd : {32, 64, 80}) {
    const int64_t H = 8, KVH = 2, bs = 16, num_blocks = 9, B = 3, M = 3;
    const int64_t row8 = KVH * (hd + 4), row = KVH * hd, slots = num_blocks * bs;
    std::vector<int8_t> k8(slots * row8), v8(slots * row8);
    std::vector<float> kf(slots * row), vf(slots * row);
    for (int64_t sl = 0; sl < slots; ++sl)
      for (int64_t c = 0; c < KVH; ++c)
        for (auto [p8, pf] : {std::pair{&k8, &kf}, std::pair{&v8, &vf}}) {
          int8_t *r = p8->data() + sl * row8 + c * (hd + 4);
          float sc = 0.001f + 0.05f * static_cast<float>(qd(rng) + 127) / 254.0f;
          std::memcpy(r + hd, &sc, 4);
          for (int64_t d = 0; d < hd; ++d) {
            r[d] = static_cast<int8_t>(qd(rng));
            (*pf)[sl * row + c * hd + d] = sc * static_cast<float>(r[d]);
          }
        }
    // three sequences: a prefill chunk, two decodes; blocks out of order
    std::vector<int32_t> tables = {8, 2, 5, 0, 7, -1, 3, 1, 6}, seq_lens = {40, 20, 33};
    std::vector<int32_t> query_start = {0, 6, 7, 8};
    const int64_t N = 8;
    std::vector<float> q = Random(H * N * hd, rng, -2.0f, 2.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (const Schedule &s : kSchedules) {
      std::vector<float> want(H * N * hd, kNaN), got(H * N * hd, kNaN);
      RunWorkgroups(s, [&](int64_t wg, int64_t count) {
        kiln_uk_paged_attention_f32(q.data(), kf.data(), vf.data(), tables.data(), seq_lens.data(),
                                    query_start.data(), B, M, H, KVH, N, hd, num_blocks, bs, scale, 1,
                                    want.data(), wg, count);
        kiln_uk_paged_attention_q8(q.data(), k8.data(), v8.data(), tables.data(), seq_lens.data(),
                                   query_start.data(), B, M, H, KVH, N, hd, num_blocks, bs, scale, 1,
                                   got.data(), wg, count);
      });
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << "hd=" << hd << " " << Describe(s);
    }
  }
}

// kv8 writes: per (token, head) the scale is max|x| / 127 and every value
// is within half a step; slot -1 writes nothing.
TEST(UkLayout, KvCacheWriteQ8QuantizesEachRow) {
  std::mt19937 rng(32);
  const int64_t KVH = 3, N = 5, hd = 40, num_slots = 12;
  std::vector<float> cur = Random(KVH * N * hd, rng, -3.0f, 3.0f);
  for (int64_t d = 0; d < hd; ++d) cur[(1 * N + 2) * hd + d] = 0.0f;  // an all-zero row
  std::vector<int32_t> slots = {4, -1, 11, 0, 7};
  for (const Schedule &s : kSchedules) {
    std::vector<int8_t> pool(num_slots * KVH * (hd + 4), 0x55);
    RunWorkgroups(s, [&](int64_t wg, int64_t count) {
      kiln_uk_kv_cache_write_q8(cur.data(), slots.data(), KVH, N, hd, num_slots, pool.data(), wg, count);
    });
    std::vector<bool> written(num_slots, false);
    for (int64_t t = 0; t < N; ++t) {
      if (slots[t] < 0) continue;
      written[slots[t]] = true;
      for (int64_t c = 0; c < KVH; ++c) {
        const float *x = cur.data() + (c * N + t) * hd;
        const int8_t *r = pool.data() + (slots[t] * KVH + c) * (hd + 4);
        float sc;
        std::memcpy(&sc, r + hd, 4);
        float amax = 0;
        for (int64_t d = 0; d < hd; ++d) amax = std::max(amax, std::fabs(x[d]));
        EXPECT_FLOAT_EQ(sc, amax / 127.0f);
        for (int64_t d = 0; d < hd; ++d)
          EXPECT_LE(std::fabs(sc * r[d] - x[d]), sc * 0.5f + 1e-6f) << "t=" << t << " c=" << c << " d=" << d;
      }
    }
    for (int64_t sl = 0; sl < num_slots; ++sl)
      if (!written[sl])
        for (int64_t i = 0; i < KVH * (hd + 4); ++i)
          ASSERT_EQ(pool[sl * KVH * (hd + 4) + i], 0x55) << "slot " << sl << " was written";
  }
}

// A sequence's rows are bitwise the same alone, batched with others, and
// with its rows computed in other chunks (the prompt in one piece, or the
// last 5 rows as a later step over the first rows' cached keys).
TEST(UkAttention, PagedRowsAreBatchInvariant) {
  const int64_t H = 8, KVH = 2, hd = 32, bs = 16, num_blocks = 16;
  std::mt19937 rng(24);
  std::vector<float> kpool = Random(num_blocks * bs * KVH * hd, rng, -2.0f, 2.0f);
  std::vector<float> vpool = Random(kpool.size(), rng);
  const int64_t S = 37;  // the sequence: 37 tokens in blocks 3, 9, 5
  std::vector<float> qseq = Random(H * S * hd, rng, -2.0f, 2.0f);
  auto run = [&](std::vector<std::pair<int64_t, int64_t>> parts /* (first row, rows) of the sequence */,
                 int64_t others, int64_t count) {
    // Batch: `others` decode rows of another sequence (blocks 0, 1) first,
    // then the chosen parts of ours, each as its own batch entry.
    std::vector<int32_t> tables, lens, starts{0};
    std::vector<std::pair<int64_t, int64_t>> where;  // batch row -> (part, row)
    int64_t n = 0;
    for (int64_t o = 0; o < others; ++o) {
      tables.insert(tables.end(), {0, 1, 0}), lens.push_back(20), starts.push_back(static_cast<int32_t>(++n));
    }
    for (auto [first, rows] : parts) {
      tables.insert(tables.end(), {3, 9, 5}), lens.push_back(static_cast<int32_t>(first + rows));
      n += rows, starts.push_back(static_cast<int32_t>(n));
    }
    const int64_t B = static_cast<int64_t>(lens.size());
    std::vector<float> q = Random(H * n * hd, rng), out(H * n * hd, kNaN);
    int64_t row = others;
    for (auto [first, rows] : parts)
      for (int64_t r = 0; r < rows; ++r, ++row)
        for (int64_t h = 0; h < H; ++h)
          std::memcpy(&q[(h * n + row) * hd], &qseq[(h * S + first + r) * hd], hd * sizeof(float));
    for (int64_t wg = 0; wg < count; ++wg)
      kiln_uk_paged_attention_f32(q.data(), kpool.data(), vpool.data(), tables.data(), lens.data(), starts.data(),
                                  B, 3, H, KVH, n, hd, num_blocks, bs, 0.17f, 1, out.data(), wg, count);
    std::vector<float> mine(H * S * hd, kNaN);
    row = others;
    for (auto [first, rows] : parts)
      for (int64_t r = 0; r < rows; ++r, ++row)
        for (int64_t h = 0; h < H; ++h)
          std::memcpy(&mine[(h * S + first + r) * hd], &out[(h * n + row) * hd], hd * sizeof(float));
    return mine;
  };
  std::vector<float> alone = run({{0, S}}, 0, 1);
  EXPECT_EQ(alone, run({{0, S}}, 5, 3)) << "batched with 5 decodes, 3 workgroups";
  EXPECT_EQ(alone, run({{0, 32}, {32, 5}}, 2, 2)) << "prompt in two chunks (as two entries)";
  EXPECT_EQ(alone, run({{0, 36}, {36, 1}}, 0, 1)) << "last row as a decode";
}

TEST(UkAttention, PagedSkipsBadBlocksAndUncoveredRows) {
  // One sequence owning rows 0..1 of 3; its second block id is out of the
  // pool. Row 2 belongs to no sequence: zeros, never garbage.
  const int64_t H = 2, KVH = 1, hd = 16, bs = 4, num_blocks = 2, N = 3;
  std::mt19937 rng(22);
  std::vector<float> kpool = Random(num_blocks * bs * KVH * hd, rng), vpool = Random(kpool.size(), rng);
  std::vector<float> q = Random(H * N * hd, rng);
  std::vector<int32_t> tables = {1, 7}, seq_lens = {6}, query_start = {0, 2};
  std::vector<float> out(H * N * hd, kNaN);
  kiln_uk_paged_attention_f32(q.data(), kpool.data(), vpool.data(), tables.data(), seq_lens.data(),
                              query_start.data(), 1, 2, H, KVH, N, hd, num_blocks, bs, 0.25f, 1,
                              out.data(), 0, 1);
  for (float x : out) EXPECT_TRUE(std::isfinite(x));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < hd; ++i) EXPECT_EQ(out[(h * N + 2) * hd + i], 0.0f);
}

TEST(UkLayout, KvCacheWriteFillsOnlyItsSlots) {
  std::mt19937 rng(23);
  const int64_t KVH = 2, N = 5, hd = 24, num_slots = 12;
  std::vector<float> cur = Random(KVH * N * hd, rng);
  std::vector<int32_t> slots = {3, 11, -1, 0, 12};  // -1 and 12 (out of range) are skipped
  for (const Schedule &s : kSchedules) {
    std::vector<float> pool(num_slots * KVH * hd, -7.0f);
    RunWorkgroups(s, [&](int64_t wg, int64_t count) {
      kiln_uk_kv_cache_write_f32(cur.data(), slots.data(), KVH, N, hd, num_slots, pool.data(), wg, count);
    });
    for (int64_t slot = 0; slot < num_slots; ++slot)
      for (int64_t c = 0; c < KVH; ++c)
        for (int64_t i = 0; i < hd; ++i) {
          int64_t t = slot == 3 ? 0 : slot == 11 ? 1 : slot == 0 ? 3 : -1;
          float want = t < 0 ? -7.0f : cur[(c * N + t) * hd + i];
          ASSERT_EQ(pool[(slot * KVH + c) * hd + i], want) << "slot " << slot << " head " << c;
        }
  }
}

//===-- Layout: KV append, heads, embedding --------------------------------===//

TEST(UkLayout, KvAppendConcatenatesAlongTime) {
  std::mt19937 rng(13);
  const int64_t B = 2, KVH = 3;
  for (int64_t P : {0, 5})
    for (int64_t S : {1, 4})
      for (int64_t hd : {32, 7}) {
        SCOPED_TRACE("P=" + std::to_string(P) + " S=" + std::to_string(S) + " hd=" +
                     std::to_string(hd));
        std::vector<float> past = Random(B * KVH * P * hd, rng), cur = Random(B * KVH * S * hd, rng);
        for (const Schedule &s : kSchedules) {
          std::vector<float> out(B * KVH * (P + S) * hd, kNaN);
          RunWorkgroups(s, [&](int64_t wg, int64_t count) {
            kiln_uk_kv_append_f32(P ? past.data() : nullptr, cur.data(), B, KVH, P, S, hd,
                                  out.data(), wg, count);
          });
          for (int64_t bk = 0; bk < B * KVH; ++bk)
            for (int64_t t = 0; t < P + S; ++t)
              for (int64_t i = 0; i < hd; ++i) {
                float want = t < P ? past[(bk * P + t) * hd + i] : cur[(bk * S + t - P) * hd + i];
                ASSERT_EQ(out[(bk * (P + S) + t) * hd + i], want) << Describe(s);
              }
        }
      }
}

TEST(UkLayout, SplitAndMergeHeadsAreInverse) {
  std::mt19937 rng(14);
  const int64_t B = 2, S = 5, H = 3;
  for (int64_t hd : {16, 7}) {
    std::vector<float> x = Random(B * S * H * hd, rng);
    for (const Schedule &s : kSchedules) {
      std::vector<float> split(x.size(), kNaN), merged(x.size(), kNaN);
      RunWorkgroups(s, [&](int64_t wg, int64_t count) {
        kiln_uk_split_heads_f32(x.data(), B, S, H, hd, split.data(), wg, count);
      });
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t t = 0; t < S; ++t)
            for (int64_t i = 0; i < hd; ++i)
              ASSERT_EQ(split[((b * H + h) * S + t) * hd + i], x[((b * S + t) * H + h) * hd + i])
                  << Describe(s) << " hd=" << hd;
      RunWorkgroups(s, [&](int64_t wg, int64_t count) {
        kiln_uk_merge_heads_f32(split.data(), B, H, S, hd, merged.data(), wg, count);
      });
      ASSERT_EQ(merged, x) << Describe(s) << " hd=" << hd;
    }
  }
}

TEST(UkLayout, EmbeddingClampsIdsAndPositions) {
  std::mt19937 rng(15);
  const int64_t V = 10, max_pos = 6, N = 7;
  const std::vector<int64_t> ids = {0, 9, -1, 10, 1000, 3, 4};
  const std::vector<int64_t> pos = {0, 5, -7, 6, 2, 100, 1};
  for (int64_t D : {16, 37})
    for (int variant = 0; variant < 3; ++variant) {  // no positions, positions, implicit i
      SCOPED_TRACE("D=" + std::to_string(D) + " variant " + std::to_string(variant));
      std::vector<float> table = Random(V * D, rng), pt = Random(max_pos * D, rng);
      for (const Schedule &s : kSchedules) {
        std::vector<float> out(N * D, kNaN);
        RunWorkgroups(s, [&](int64_t wg, int64_t count) {
          kiln_uk_embedding_f32(table.data(), V, D, ids.data(), N, variant ? pt.data() : nullptr,
                                max_pos, variant == 1 ? pos.data() : nullptr, out.data(), wg,
                                count);
        });
        for (int64_t i = 0; i < N; ++i) {
          int64_t id = std::clamp<int64_t>(ids[i], 0, V - 1);
          int64_t p = std::clamp<int64_t>(variant == 1 ? pos[i] : i, 0, max_pos - 1);
          for (int64_t d = 0; d < D; ++d) {
            float want = table[id * D + d];
            if (variant) want += pt[p * D + d];
            ASSERT_EQ(out[i * D + d], want) << Describe(s) << " row " << i;
          }
        }
      }
    }
}

//===-- 2:4 sparse weights (sparse24.c) ---------------------------------===//

// A 2:4 pruned weight: the kept values and positions as kiln-llm-prune
// writes them (ukernels.h), the dense equivalent (zeros where pruned) for
// the reference, and the packed form.
struct S24Weight {
  int64_t K = 0, N = 0;
  int32_t bits = 32;
  std::vector<double> dense;  // [K, N]
  std::vector<uint8_t> packed;
};

uint16_t S24Half(float f) {  // finite, normal, positive scales only
  uint32_t x;
  std::memcpy(&x, &f, 4);
  x += 0xfff + ((x >> 13) & 1);
  return (uint16_t)((x - 0x38000000) >> 13);
}

double S24FromHalf(uint16_t h) { return std::ldexp(1.0 + (h & 1023) / 1024.0, ((h >> 10) & 31) - 15); }

S24Weight RandomS24Weight(int64_t K, int64_t N, int32_t bits, std::mt19937 &rng,
                          bool unsorted = false) {
  S24Weight w;
  w.K = K;
  w.N = N;
  w.bits = bits;
  w.dense.assign(K * N, 0.0);
  std::vector<float> vf(K / 2 * N);
  std::vector<int8_t> vq(K / 2 * N), idx(K / 2 * N);
  std::vector<uint16_t> scales(N);
  std::uniform_int_distribution<int> pos(0, 3), q(-127, 127);
  std::vector<float> v = Random(K / 2 * N, rng);
  for (int64_t n = 0; n < N; ++n) scales[n] = S24Half(0.001f + 0.01f * (n % 7));
  for (int64_t g = 0; g < K / 4; ++g)
    for (int64_t n = 0; n < N; ++n) {
      int a = pos(rng), b = pos(rng);
      while (b == a) b = pos(rng);
      if (!unsorted && a > b) std::swap(a, b);
      for (int i = 0; i < 2; ++i) {
        int64_t r = (2 * g + i) * N + n;
        idx[r] = (int8_t)(i == 0 ? a : b);
        vf[r] = v[r];
        vq[r] = (int8_t)q(rng);
        double val = bits == 8 ? vq[r] * S24FromHalf(scales[n]) : vf[r];
        w.dense[(4 * g + idx[r]) * N + n] = val;
      }
    }
  w.packed.assign(kiln_uk_packed_s24_size(K, N, bits), 0xAB);
  kiln_uk_pack_s24(bits == 8 ? (const void *)vq.data() : (const void *)vf.data(), idx.data(),
                   scales.data(), K, N, bits, w.packed.data());
  return w;
}

std::vector<double> S24Ref(const std::vector<float> &A, const S24Weight &w, int64_t M) {
  std::vector<double> y(M * w.N, 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < w.K; ++k)
      for (int64_t n = 0; n < w.N; ++n) y[m * w.N + n] += A[m * w.K + k] * w.dense[k * w.N + n];
  return y;
}

TEST(UkSparse24, PackedSizeIsHalfTheValuesPlusIndices) {
  EXPECT_EQ(kiln_uk_packed_s24_size(64, 20, 32), 2 * 16 * 144);
  EXPECT_EQ(kiln_uk_packed_s24_size(64, 20, 8), 2 * (32 + 16 * 48));
  EXPECT_EQ(kiln_uk_packed_s24_size(62, 20, 32), 0);  // K not a multiple of 4
  EXPECT_EQ(kiln_uk_packed_s24_size(64, 20, 4), 0);
  EXPECT_EQ(kiln_uk_packed_s24_size(0, 20, 32), 0);
}

TEST(UkSparse24, F32AndInt8AgainstThePrunedDenseReference) {
  std::mt19937 rng(31);
  int i = 0;
  for (int32_t bits : {32, 8})
    for (auto [K, N] : {std::pair<int64_t, int64_t>{256, 33}, {4, 16}, {516, 50}})
      for (int64_t M : {1, 2, 3, 5, 7, 31, 100}) {
        ++i;
        SCOPED_TRACE("bits=" + std::to_string(bits) + " M=" + std::to_string(M) +
                     " K=" + std::to_string(K) + " N=" + std::to_string(N));
        S24Weight w = RandomS24Weight(K, N, bits, rng, i % 2 == 0);
        std::vector<float> A = Random(M * K, rng), bias = Random(N, rng), res = Random(M * N, rng);
        int act = i % 4;
        bool with_bias = i % 2 == 0, with_res = i % 3 != 0;
        std::vector<double> ref = S24Ref(A, w, M);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double &y = ref[m * N + n];
            y = ActRef(y + (with_bias ? bias[n] : 0.0), act) + (with_res ? res[m * N + n] : 0.0);
          }
        for (const Schedule &s : kSchedules) {
          std::vector<float> C(M * N, kNaN);
          RunWorkgroups(s, [&](int64_t wg, int64_t count) {
            kiln_uk_matmul_s24_f32(A.data(), M, K, w.packed.data(), N, bits,
                                   with_bias ? bias.data() : nullptr,
                                   with_res ? res.data() : nullptr, act, C.data(), wg, count);
          });
          ExpectClose(C, ref, kTol, Describe(s));
        }
      }
}

TEST(UkSparse24, GluOfTwoSparseWeights) {
  std::mt19937 rng(32);
  for (int32_t bits : {32, 8})
    for (int64_t M : {1, 3, 40}) {
      const int64_t K = 256, N = 70;
      S24Weight g = RandomS24Weight(K, N, bits, rng), u = RandomS24Weight(K, N, bits, rng);
      std::vector<float> A = Random(M * K, rng);
      std::vector<double> rg = S24Ref(A, g, M), ru = S24Ref(A, u, M);
      for (size_t j = 0; j < rg.size(); ++j) rg[j] = ActRef(rg[j], KILN_UK_ACT_SILU) * ru[j];
      for (const Schedule &s : kSchedules) {
        std::vector<float> C(M * N, kNaN);
        RunWorkgroups(s, [&](int64_t wg, int64_t count) {
          kiln_uk_matmul_glu_s24_f32(A.data(), M, K, g.packed.data(), u.packed.data(), N, bits,
                                     KILN_UK_ACT_SILU, C.data(), wg, count);
        });
        ExpectClose(C, rg, kTol, "bits=" + std::to_string(bits) + " M=" + std::to_string(M) +
                                     " " + Describe(s));
      }
    }
}

TEST(UkSparse24, RowsAreBitwiseTheSameForAnyM) {
  std::mt19937 rng(33);
  const int64_t K = 512, N = 90;
  std::vector<float> A = Random(130 * K, rng);
  for (int32_t bits : {32, 8}) {
    S24Weight w = RandomS24Weight(K, N, bits, rng), u = RandomS24Weight(K, N, bits, rng);
    auto rows = [&](int64_t M, bool glu, int64_t count) {
      std::vector<float> C(M * N, kNaN);
      for (int64_t wg = 0; wg < count; ++wg) {
        if (glu)
          kiln_uk_matmul_glu_s24_f32(A.data(), M, K, w.packed.data(), u.packed.data(), N, bits, 2,
                                     C.data(), wg, count);
        else
          kiln_uk_matmul_s24_f32(A.data(), M, K, w.packed.data(), N, bits, nullptr, nullptr, 0,
                                 C.data(), wg, count);
      }
      return C;
    };
    for (bool glu : {false, true}) {
      std::vector<float> one = rows(1, glu, 1);
      for (int64_t M : {2, 5, 9, 130})
        for (int64_t count : {1, 4}) {
          std::vector<float> many = rows(M, glu, count);
          EXPECT_EQ(std::memcmp(one.data(), many.data(), N * sizeof(float)), 0)
              << "row 0 differs at bits=" << bits << " M=" << M << " count=" << count
              << (glu ? " (glu)" : "");
        }
    }
  }
}

}  // namespace
