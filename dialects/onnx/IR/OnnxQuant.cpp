//===- OnnxQuant.cpp - Reading quantized weights of onnx ops ---------------===//
#include "dialects/onnx/IR/OnnxQuant.h"

#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/APFloat.h"

#include <cstring>

using namespace mlir;

namespace kiln::onnx {

ElementsAttr constantOf(Value v) {
  if (!v)
    return {};
  Attribute attr;
  if (!matchPattern(v, m_Constant(&attr)))
    return {};
  return dyn_cast<ElementsAttr>(attr);
}

std::optional<ArrayRef<char>> rawBytes(ElementsAttr attr,
                                       std::vector<char> &storage) {
  if (!attr)
    return std::nullopt;
  auto type = cast<ShapedType>(attr.getType());
  Type et = type.getElementType();
  if (!et.isIntOrFloat() || et.getIntOrFloatBitWidth() == 1)
    return std::nullopt;
  unsigned bits = et.getIntOrFloatBitWidth();
  // Integers narrower than a byte (i4) are stored one element per byte, as
  // MLIR stores them; other widths must be whole bytes.
  if (bits % 8 != 0 && !(isa<IntegerType>(et) && bits < 8))
    return std::nullopt;
  size_t width = (bits + 7) / 8;
  size_t bytes = type.getNumElements() * width;
  if (auto res = dyn_cast<DenseResourceElementsAttr>(attr)) {
    AsmResourceBlob *blob = res.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != bytes)
      return std::nullopt;
    return blob->getData();
  }
  auto dense = dyn_cast<DenseElementsAttr>(attr);
  if (!dense)
    return std::nullopt;
  ArrayRef<char> raw = dense.getRawData();
  if (!dense.isSplat())
    return raw.size() == bytes ? std::optional<ArrayRef<char>>(raw) : std::nullopt;
  storage.resize(bytes);
  for (size_t i = 0; i < bytes; i += width)
    std::memcpy(storage.data() + i, raw.data(), width);
  return ArrayRef<char>(storage);
}

std::optional<std::vector<float>> floatValues(ElementsAttr attr) {
  std::vector<char> storage;
  auto bytes = rawBytes(attr, storage);
  if (!bytes)
    return std::nullopt;
  auto ft = dyn_cast<FloatType>(cast<ShapedType>(attr.getType()).getElementType());
  if (!ft)
    return std::nullopt;
  int64_t n = attr.getNumElements();
  std::vector<float> out(n);
  if (ft.isF32()) {
    std::memcpy(out.data(), bytes->data(), n * sizeof(float));
    return out;
  }
  if (!ft.isF16() && !ft.isBF16())
    return std::nullopt;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes->data() + 2 * i, 2);
    APFloat f(ft.getFloatSemantics(), APInt(16, bits));
    out[i] = f.convertToFloat();
  }
  return out;
}

std::optional<std::vector<int64_t>> intValues(ElementsAttr attr) {
  std::vector<char> storage;
  auto bytes = rawBytes(attr, storage);
  if (!bytes)
    return std::nullopt;
  auto it = dyn_cast<IntegerType>(cast<ShapedType>(attr.getType()).getElementType());
  if (!it || it.getWidth() > 64 || it.getWidth() % 8 != 0)
    return std::nullopt;
  unsigned w = it.getWidth() / 8;
  int64_t n = attr.getNumElements();
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    uint64_t v = 0;
    std::memcpy(&v, bytes->data() + i * w, w); // little-endian
    if (!it.isUnsigned() && w < 8 && (v >> (8 * w - 1)) & 1)
      v |= ~uint64_t(0) << (8 * w);
    out[i] = static_cast<int64_t>(v);
  }
  return out;
}

static bool isNone(Value v) { return !v || isa<NoneType>(v.getType()); }

FailureOr<UnpackedNBits> unpackMatMulNBits(MatMulNBitsOp op, std::string &why) {
  UnpackedNBits u;
  u.K = op.getK();
  u.N = op.getN();
  u.blockSize = op.getBlockSize();
  int64_t bits = op.getBits();
  if (bits != 4 || u.K <= 0 || u.N <= 0 || u.blockSize <= 0) {
    why = "only 4-bit MatMulNBits with positive K, N, block_size";
    return failure();
  }
  int64_t K = u.K, N = u.N, bs = u.blockSize;
  int64_t nb = (K + bs - 1) / bs, blob = bs * bits / 8;
  u.numBlocks = nb;

  std::vector<char> bStore;
  auto b = rawBytes(constantOf(op.getB()), bStore);
  if (!b || (int64_t)b->size() != N * nb * blob) {
    why = "B is not a constant of N * n_blocks * blob_size bytes";
    return failure();
  }
  auto s = floatValues(constantOf(op.getScales()));
  if (!s || (int64_t)s->size() != N * nb) {
    why = "scales are not a constant of N * n_blocks floats";
    return failure();
  }
  // Codes: row n of B is the weight's column n, K codes packed low nibble
  // first, block after block.
  u.codes.assign(K * N, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      int64_t blk = k / bs, j = k % bs;
      uint8_t byte = (uint8_t)(*b)[(n * nb + blk) * blob + j / 2];
      u.codes[k * N + n] = (j % 2 == 0) ? (byte & 0xF) : (byte >> 4);
    }
  u.scales.assign(nb * N, 0.f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < nb; ++g)
      u.scales[g * N + n] = (*s)[n * nb + g];

  u.zeroPoints.assign(nb * N, float(1 << (bits - 1)));
  if (!isNone(op.getZeroPoints())) {
    ElementsAttr z = constantOf(op.getZeroPoints());
    Type zt = z ? cast<ShapedType>(z.getType()).getElementType() : Type();
    if (zt && zt.isInteger(8)) {
      std::vector<char> zStore;
      auto zb = rawBytes(z, zStore);
      int64_t perRow = (nb * bits + 7) / 8;
      if (!zb || (int64_t)zb->size() != N * perRow) {
        why = "packed zero_points must have N * ceil(n_blocks / 2) bytes";
        return failure();
      }
      for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < nb; ++g) {
          uint8_t byte = (uint8_t)(*zb)[n * perRow + g / 2];
          u.zeroPoints[g * N + n] = (g % 2 == 0) ? (byte & 0xF) : (byte >> 4);
        }
    } else if (zt && isa<FloatType>(zt)) {
      auto zf = floatValues(z);
      if (!zf || (int64_t)zf->size() != N * nb) {
        why = "unpacked zero_points must have N * n_blocks values";
        return failure();
      }
      for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < nb; ++g) {
          float v = (*zf)[n * nb + g];
          u.zeroPoints[g * N + n] = v;
          if (v != (float)(int)v || v < 0 || v > 15)
            u.integerZeroPoints = false;
        }
    } else {
      why = "zero_points are not a uint8 or float constant";
      return failure();
    }
  }

  u.groupOf.resize(K);
  for (int64_t k = 0; k < K; ++k)
    u.groupOf[k] = k / bs;
  if (!isNone(op.getGIdx())) {
    auto g = intValues(constantOf(op.getGIdx()));
    if (!g || (int64_t)g->size() != K) {
      why = "g_idx is not a constant of K integers";
      return failure();
    }
    for (int64_t k = 0; k < K; ++k) {
      if ((*g)[k] < 0 || (*g)[k] >= nb) {
        why = "g_idx names a block out of range";
        return failure();
      }
      if ((*g)[k] != u.groupOf[k])
        u.defaultGroups = false;
      u.groupOf[k] = (int32_t)(*g)[k];
    }
  }
  return u;
}

} // namespace kiln::onnx
