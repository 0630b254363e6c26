//===- CalibrationStats.h - What calibration learns about activations -*- C++ -*-===//
//
// Statistics of the input x (rows = tokens, K channels) that one or more
// linear weights W [K, N] read, gathered over calibration text: the
// products sum x^T x (K x K, for GPTQ's Hessian and AWQ's output error),
// sum |x_k| (AWQ's channel salience) and max |x_k| (SmoothQuant's scales). Wanda-style pruning reads the channel
// norms ||x_k||_2 = sqrt(xtx[k, k]). No MLIR in here: the calibration runner
// fills these, the quantizer (and any other compression pass) reads them.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_COMPILER_TRANSFORMS_CALIBRATIONSTATS_H
#define KILN_COMPILER_TRANSFORMS_CALIBRATIONSTATS_H

#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln {

struct ActivationStats {
  /// K: channels of x.
  int64_t channels = 0;
  /// Rows (tokens) accumulated so far.
  int64_t tokens = 0;
  /// sum over rows of x^T x, [K, K] row major; after finish() both
  /// triangles hold it (before, only the upper one is kept up to date).
  std::vector<float> xtx;
  /// sum over rows of |x_k|, [K].
  std::vector<double> sumAbs;
  /// max over rows of |x_k|, [K] (SmoothQuant's migration scales).
  std::vector<float> maxAbs;

  explicit ActivationStats(int64_t channels = 0)
      : channels(channels), xtx(channels * channels, 0.0f), sumAbs(channels, 0.0),
        maxAbs(channels, 0.0f) {}

  /// Adds `rows` rows of x ([rows, K] row major).
  void accumulate(const float *x, int64_t rows);
  /// Mirrors the upper triangle of xtx into the lower one.
  void finish();

  double meanAbs(int64_t k) const { return tokens ? sumAbs[k] / tokens : 0.0; }
  double meanSquare(int64_t k) const { return tokens ? xtx[k * channels + k] / tokens : 0.0; }
  /// ||x_k||_2 over every calibration row (Wanda's |W| * ||x|| salience).
  double norm(int64_t k) const { return std::sqrt(std::max(0.0f, xtx[k * channels + k])); }
};

} // namespace kiln

#endif
