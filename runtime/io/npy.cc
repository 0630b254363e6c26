//===- npy.cc - NumPy .npy reader and writer --------------------------------===//
//
// The header is a Python dict literal; a small recursive-descent parser reads
// exactly the subset np.save writes (strings, True/False, tuples of ints).
#include "runtime/io/npy.h"

#include <cctype>
#include <cstring>
#include <optional>

#include "runtime/io/file.h"

namespace kiln::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kMaxRank = 32;

Status Malformed(std::string_view why) { return InvalidArgumentError(StrCat("npy: ", why)); }

struct Descr {
  char kind;  // 'f', 'i', 'u', 'b', 'V'
  int size;
  DType dtype;
};
constexpr Descr kDescrs[] = {
    {'f', 4, DType::kF32}, {'f', 8, DType::kF64}, {'f', 2, DType::kF16}, {'V', 2, DType::kBF16},
    {'i', 1, DType::kI8},  {'i', 2, DType::kI16}, {'i', 4, DType::kI32}, {'i', 8, DType::kI64},
    {'u', 1, DType::kU8},  {'u', 2, DType::kU16}, {'u', 4, DType::kU32}, {'u', 8, DType::kU64},
    {'b', 1, DType::kBool},
};

StatusOr<DType> ParseDescr(std::string_view descr) {
  if (descr.size() < 3) return Malformed(StrCat("unsupported dtype '", descr, "'"));
  char order = descr[0];
  char kind = descr[1];
  std::string_view digits = descr.substr(2);
  int size = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c)) || size > 1000)
      return Malformed(StrCat("unsupported dtype '", descr, "'"));
    size = size * 10 + (c - '0');
  }
  for (const Descr& d : kDescrs) {
    if (d.kind != kind || d.size != size) continue;
    // '>' is only harmless for single bytes; '=' is native, i.e. little here.
    if (order == '<' || order == '|' || order == '=' || (order == '>' && size == 1)) return d.dtype;
    return Malformed(StrCat("big-endian dtype '", descr, "' is not supported"));
  }
  return Malformed(StrCat("unsupported dtype '", descr, "'"));
}

std::string DescrOf(DType dtype) {
  for (const Descr& d : kDescrs)
    if (d.dtype == dtype) return StrCat(d.size == 1 ? '|' : '<', d.kind, d.size);
  return "?";
}

/// Cursor over the header text.
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  Status Parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    if (!Eat('{')) return Malformed("header is not a dict");
    while (true) {
      SkipSpace();
      if (Eat('}')) break;
      KILN_ASSIGN_OR_RETURN(std::string key, ParseString());
      if (!Eat(':')) return Malformed("expected ':' in header");
      if (key == "descr") {
        SkipSpace();
        if (Peek() == '[') return Malformed("structured dtypes are not supported");
        KILN_ASSIGN_OR_RETURN(descr, ParseString());
        have_descr = true;
      } else if (key == "fortran_order") {
        KILN_ASSIGN_OR_RETURN(fortran, ParseBool());
        have_fortran = true;
      } else if (key == "shape") {
        KILN_ASSIGN_OR_RETURN(shape, ParseShape());
        have_shape = true;
      } else {
        return Malformed(StrCat("unexpected header key '", key, "'"));
      }
      SkipSpace();
      if (Eat('}')) break;
      if (!Eat(',')) return Malformed("expected ',' or '}' in header");
    }
    SkipSpace();
    if (pos_ != text_.size()) return Malformed("trailing characters after the header dict");
    if (!have_descr || !have_fortran || !have_shape)
      return Malformed("header lacks one of 'descr', 'fortran_order', 'shape'");
    return OkStatus();
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }

  StatusOr<std::string> ParseString() {
    SkipSpace();
    char quote = Peek();
    if (quote != '\'' && quote != '"') return Malformed("expected a string in header");
    size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) return Malformed("unterminated string in header");
    std::string s(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return s;
  }

  StatusOr<bool> ParseBool() {
    SkipSpace();
    if (text_.substr(pos_, 4) == "True") { pos_ += 4; return true; }
    if (text_.substr(pos_, 5) == "False") { pos_ += 5; return false; }
    return Malformed("expected True or False for 'fortran_order'");
  }

  StatusOr<std::vector<int64_t>> ParseShape() {
    std::vector<int64_t> shape;
    if (!Eat('(')) return Malformed("expected a tuple for 'shape'");
    while (true) {
      if (Eat(')')) break;
      SkipSpace();
      if (!std::isdigit(static_cast<unsigned char>(Peek()))) return Malformed("invalid dim in 'shape'");
      int64_t dim = 0;
      while (std::isdigit(static_cast<unsigned char>(Peek()))) {
        if (__builtin_mul_overflow(dim, 10, &dim) || __builtin_add_overflow(dim, Peek() - '0', &dim))
          return Malformed("dim in 'shape' overflows");
        ++pos_;
      }
      SkipSpace();
      if (Peek() == 'L') ++pos_;  // Python 2 longs
      shape.push_back(dim);
      if (shape.size() > kMaxRank) return Malformed("'shape' has too many dims");
      if (Eat(')')) break;
      if (!Eat(',')) return Malformed("expected ',' or ')' in 'shape'");
    }
    return shape;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

bool LooksLikeNpy(std::span<const uint8_t> bytes) {
  return bytes.size() >= kMagicSize && std::memcmp(bytes.data(), kMagic, kMagicSize) == 0;
}

StatusOr<Tensor> ParseNpy(std::span<const uint8_t> bytes) {
  if (!LooksLikeNpy(bytes)) return Malformed("missing magic \"\\x93NUMPY\" (not a .npy file)");
  if (bytes.size() < 10) return Malformed("file truncated inside the preamble");
  const int major = bytes[6];
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = bytes[8] | (size_t{bytes[9]} << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Malformed("file truncated inside the preamble");
    header_len = bytes[8] | (size_t{bytes[9]} << 8) | (size_t{bytes[10]} << 16) | (size_t{bytes[11]} << 24);
    header_start = 12;
  } else {
    return Malformed(StrCat("unsupported format version ", major, ".", int{bytes[7]}));
  }
  if (header_len > bytes.size() - header_start) return Malformed("file truncated inside the header");
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + header_start), header_len);

  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  KILN_RETURN_IF_ERROR(HeaderParser(text).Parse(descr, fortran, shape));
  KILN_ASSIGN_OR_RETURN(DType dtype, ParseDescr(descr));
  // Fortran order with at most one non-unit dim is the same bytes as C order.
  int non_unit = 0;
  for (int64_t d : shape) non_unit += d != 1;
  if (fortran && non_unit > 1) return Malformed("Fortran-order arrays are not supported");

  StatusOr<int64_t> need_or = CheckedByteSize(dtype, shape);
  if (!need_or.ok()) return Malformed(need_or.status().message());
  const int64_t need = *need_or;
  const size_t have = bytes.size() - header_start - header_len;
  if (static_cast<uint64_t>(need) != have)
    return Malformed(StrCat("data is ", have, " bytes but ", descr, ShapeToString(shape), " needs ", need));
  KILN_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Create(dtype, std::move(shape)));
  if (need) std::memcpy(tensor.data.data(), bytes.data() + header_start + header_len, need);
  return tensor;
}

StatusOr<Tensor> ReadNpy(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(path));
  StatusOr<Tensor> tensor = ParseNpy(bytes);
  if (!tensor.ok()) return tensor.status().Annotate(StrCat("'", path, "'"));
  return tensor;
}

StatusOr<std::vector<uint8_t>> EncodeNpy(const Tensor& tensor) {
  KILN_ASSIGN_OR_RETURN(int64_t need, CheckedByteSize(tensor.dtype, tensor.shape));
  if (static_cast<uint64_t>(need) != tensor.data.size())
    return InvalidArgumentError(StrCat("npy: tensor ", tensor.Describe(), " holds ", tensor.data.size(),
                                       " bytes, expected ", need));
  std::string shape = "(";
  for (int64_t d : tensor.shape) shape += StrCat(d, ", ");
  if (tensor.shape.size() >= 2) shape.resize(shape.size() - 2);
  if (tensor.shape.size() == 1) shape.resize(shape.size() - 1);  // "(3,)"
  shape += ")";
  std::string header = StrCat("{'descr': '", DescrOf(tensor.dtype), "', 'fortran_order': False, 'shape': ",
                              shape, ", }");
  // Pad with spaces and end in '\n' so that the data starts 64-byte aligned.
  bool v2 = header.size() + 1 + 10 > 65535;
  size_t preamble = v2 ? 12 : 10;
  size_t total = (preamble + header.size() + 1 + 63) / 64 * 64;
  header.append(total - preamble - header.size() - 1, ' ');
  header += '\n';
  std::vector<uint8_t> out(total + tensor.data.size());
  std::memcpy(out.data(), kMagic, kMagicSize);
  out[6] = v2 ? 2 : 1;
  out[7] = 0;
  size_t len = header.size();
  for (size_t i = 0; i < preamble - 8; ++i) out[8 + i] = static_cast<uint8_t>(len >> (8 * i));
  std::memcpy(out.data() + preamble, header.data(), header.size());
  if (!tensor.data.empty()) std::memcpy(out.data() + total, tensor.data.data(), tensor.data.size());
  return out;
}

Status WriteNpy(const std::string& path, const Tensor& tensor) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeNpy(tensor));
  return WriteFileBytes(path, bytes);
}

}  // namespace kiln::io
