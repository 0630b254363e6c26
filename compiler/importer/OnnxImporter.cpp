//===- OnnxImporter.cpp - ONNX protobuf -> onnx dialect -------------------===//
//
// Built on the ONNX C++ library: protobuf parsing, the checker, opset
// conversion and ONNX's own shape inference. The library reports errors with
// C++ exceptions, so this file (alone in the compiler) is built with
// -fexceptions and turns every exception into a one-line error.
//
//===----------------------------------------------------------------------===//
#include "compiler/importer/OnnxImporter.h"

#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Path.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/defs/operator_sets.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>

#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

using namespace mlir;

namespace kiln {
namespace {

struct ImportError {
  std::string message;
};

[[noreturn]] void fail(const std::string &message) { throw ImportError{message}; }

Type elementType(MLIRContext &ctx, int32_t onnxType) {
  using TP = ::onnx::TensorProto;
  Builder b(&ctx);
  switch (onnxType) {
  case TP::FLOAT: return b.getF32Type();
  case TP::DOUBLE: return b.getF64Type();
  case TP::FLOAT16: return b.getF16Type();
  case TP::BFLOAT16: return b.getBF16Type();
  case TP::INT8: return b.getIntegerType(8);
  case TP::INT16: return b.getIntegerType(16);
  case TP::INT32: return b.getIntegerType(32);
  case TP::INT64: return b.getIntegerType(64);
  case TP::UINT8: return b.getIntegerType(8, /*isSigned=*/false);
  case TP::UINT16: return b.getIntegerType(16, false);
  case TP::UINT32: return b.getIntegerType(32, false);
  case TP::UINT64: return b.getIntegerType(64, false);
  case TP::BOOL: return b.getI1Type();
  default: return {};
  }
}

std::string typeName(int32_t onnxType) {
  return ::onnx::TensorProto_DataType_Name(
      static_cast<::onnx::TensorProto_DataType>(onnxType));
}

/// Bytes per element in kiln's storage (bool is one byte).
size_t storageBytes(Type t) {
  if (t.isInteger(1))
    return 1;
  return t.getIntOrFloatBitWidth() / 8;
}

/// Ops of other domains that kiln imports, as (domain, op type).
bool isKnownContribOp(const std::string &domain, const std::string &opType) {
  return domain == "com.microsoft" && opType == "MatMulNBits";
}

/// Registers ONNX Runtime's com.microsoft::MatMulNBits with the ONNX library
/// (once per process), so that its checker validates the node and its shape
/// inference carries types through it: python3-onnx / libonnx know only the
/// standard domains, and a value downstream of an unknown op has no type.
void registerContribSchemas() {
  static std::once_flag once;
  std::call_once(once, [] {
    using ::onnx::OpSchema;
    auto &ranges = ::onnx::OpSchemaRegistry::DomainToVersionRange::Instance();
    if (!ranges.Map().count("com.microsoft"))
      ranges.AddDomainToVersion("com.microsoft", 1, 1);
    if (::onnx::OpSchemaRegistry::Schema("MatMulNBits", 1, "com.microsoft"))
      return;
    using AP = ::onnx::AttributeProto;
    OpSchema schema;
    schema.SetName("MatMulNBits")
        .SetDomain("com.microsoft")
        .SinceVersion(1)
        .SetDoc("ONNX Runtime's block-quantized weight MatMul (see "
                "dialects/onnx/IR/OnnxOps.td)")
        .Attr("K", "input features", AP::INT, true)
        .Attr("N", "output features", AP::INT, true)
        .Attr("bits", "bits per weight", AP::INT, static_cast<int64_t>(4))
        .Attr("block_size", "weights per block along K", AP::INT, true)
        .Attr("accuracy_level", "ignored", AP::INT, false)
        .AllowUncheckedAttributes()
        .Input(0, "A", "activations", "T1")
        .Input(1, "B", "packed codes [N, n_blocks, blob_size]", "T2")
        .Input(2, "scales", "[N * n_blocks]", "T1")
        .Input(3, "zero_points", "packed uint8 or unpacked", "T3",
               OpSchema::Optional)
        .Input(4, "g_idx", "block of each k", "T4", OpSchema::Optional)
        .Input(5, "bias", "[N]", "T1", OpSchema::Optional)
        .Output(0, "Y", "A @ dequantize(B)^T (+ bias)", "T1")
        .TypeConstraint("T1",
                        {"tensor(float)", "tensor(float16)", "tensor(bfloat16)"},
                        "float tensors")
        .TypeConstraint("T2", {"tensor(uint8)", "tensor(int32)"}, "codes")
        .TypeConstraint("T3",
                        {"tensor(uint8)", "tensor(int32)", "tensor(float)",
                         "tensor(float16)", "tensor(bfloat16)"},
                        "zero points")
        .TypeConstraint("T4", {"tensor(int32)"}, "group indices")
        .TypeAndShapeInferenceFunction([](::onnx::InferenceContext &ctx) {
          ::onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
          if (!::onnx::hasInputShape(ctx, 0))
            return;
          ::onnx::TensorShapeProto shape = ::onnx::getInputShape(ctx, 0);
          if (shape.dim_size() == 0)
            return;
          auto *last = shape.mutable_dim(shape.dim_size() - 1);
          last->Clear();
          last->set_dim_value(::onnx::getAttribute(ctx, "N", 0));
          ::onnx::updateOutputShape(ctx, 0, shape);
        });
    ::onnx::OpSchemaRegistry::OpSchemaRegisterOnce registration(schema);
  });
}

class Importer {
public:
  Importer(MLIRContext &ctx, const ImportOptions &options, std::string dir)
      : ctx(ctx), options(options), modelDir(std::move(dir)), builder(&ctx) {}

  OwningOpRef<ModuleOp> run(::onnx::ModelProto &model);

private:
  RankedTensorType tensorType(const ::onnx::TensorProto &t);
  Type valueType(const ::onnx::TypeProto &type, const std::string &what,
                 SmallVectorImpl<StringRef> *dimNames = nullptr);
  std::vector<char> tensorBytes(const ::onnx::TensorProto &t, Type element,
                                int64_t count);
  ElementsAttr tensorAttr(const ::onnx::TensorProto &t, bool allowResource);
  Attribute attribute(const ::onnx::AttributeProto &a,
                      const ::onnx::NodeProto &node);
  void importNode(const ::onnx::NodeProto &node);
  Value lookup(const std::string &name, const ::onnx::NodeProto &node);

  MLIRContext &ctx;
  const ImportOptions &options;
  std::string modelDir;
  OpBuilder builder;
  int64_t opset = 0;
  std::map<std::string, int64_t> domainOpsets;
  llvm::StringMap<Value> values;
  llvm::StringMap<const ::onnx::TypeProto *> knownTypes;
  Value noValue;
  int resourceCounter = 0;
};

RankedTensorType Importer::tensorType(const ::onnx::TensorProto &t) {
  Type element = elementType(ctx, t.data_type());
  if (!element)
    fail("tensor '" + t.name() + "' has unsupported element type " +
         typeName(t.data_type()));
  SmallVector<int64_t> shape(t.dims().begin(), t.dims().end());
  for (int64_t d : shape)
    if (d < 0)
      fail("tensor '" + t.name() + "' has a negative dim");
  return RankedTensorType::get(shape, element);
}

Type Importer::valueType(const ::onnx::TypeProto &type, const std::string &what,
                         SmallVectorImpl<StringRef> *dimNames) {
  if (!type.has_tensor_type())
    fail(what + " is not a tensor (sequence, map and optional types are not "
                "supported)");
  const auto &tt = type.tensor_type();
  Type element = elementType(ctx, tt.elem_type());
  if (!element)
    fail(what + " has unsupported element type " + typeName(tt.elem_type()));
  if (!tt.has_shape())
    return UnrankedTensorType::get(element);
  SmallVector<int64_t> shape;
  for (const auto &d : tt.shape().dim()) {
    if (d.has_dim_value() && d.dim_value() >= 0) {
      shape.push_back(d.dim_value());
      if (dimNames)
        dimNames->push_back("");
    } else {
      shape.push_back(ShapedType::kDynamic);
      if (dimNames)
        dimNames->push_back(
            StringAttr::get(&ctx, d.has_dim_param() ? d.dim_param() : "")
                .getValue());
    }
  }
  return RankedTensorType::get(shape, element);
}

std::vector<char> Importer::tensorBytes(const ::onnx::TensorProto &t,
                                        Type element, int64_t count) {
  size_t width = storageBytes(element);
  std::vector<char> bytes(count * width);
  auto copyInts = [&](const auto &field) {
    if ((int64_t)field.size() != count)
      fail("tensor '" + t.name() + "' has " + std::to_string(field.size()) +
           " values for " + std::to_string(count) + " elements");
    for (int64_t i = 0; i < count; ++i) {
      uint64_t v = static_cast<uint64_t>(field.Get(i));
      std::memcpy(bytes.data() + i * width, &v, width); // little-endian
    }
  };
  if (t.data_location() == ::onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto &kv : t.external_data()) {
      if (kv.key() == "location")
        location = kv.value();
      else if (kv.key() == "offset")
        offset = std::stoll(kv.value());
      else if (kv.key() == "length")
        length = std::stoll(kv.value());
    }
    if (location.empty())
      fail("tensor '" + t.name() + "' has external data without a location");
    SmallString<256> path(modelDir);
    llvm::sys::path::append(path, location);
    std::ifstream in(path.str().str(), std::ios::binary);
    if (!in)
      fail("cannot open external data '" + location + "' of tensor '" +
           t.name() + "'");
    if (length >= 0 && (size_t)length != bytes.size())
      fail("external data of tensor '" + t.name() + "' has " +
           std::to_string(length) + " bytes, expected " +
           std::to_string(bytes.size()));
    in.seekg(offset);
    in.read(bytes.data(), bytes.size());
    if ((size_t)in.gcount() != bytes.size())
      fail("external data file '" + location + "' is too short for tensor '" +
           t.name() + "'");
    return bytes;
  }
  if (t.has_raw_data()) {
    if (t.raw_data().size() != bytes.size())
      fail("tensor '" + t.name() + "' has " +
           std::to_string(t.raw_data().size()) + " raw bytes, expected " +
           std::to_string(bytes.size()));
    std::memcpy(bytes.data(), t.raw_data().data(), bytes.size());
    return bytes;
  }
  using TP = ::onnx::TensorProto;
  switch (t.data_type()) {
  case TP::FLOAT:
    if (t.float_data_size() != count)
      fail("tensor '" + t.name() + "' has the wrong number of values");
    std::memcpy(bytes.data(), t.float_data().data(), bytes.size());
    break;
  case TP::DOUBLE:
    if (t.double_data_size() != count)
      fail("tensor '" + t.name() + "' has the wrong number of values");
    std::memcpy(bytes.data(), t.double_data().data(), bytes.size());
    break;
  case TP::INT64:
    copyInts(t.int64_data());
    break;
  case TP::UINT32:
  case TP::UINT64:
    copyInts(t.uint64_data());
    break;
  default:
    copyInts(t.int32_data());
  }
  return bytes;
}

ElementsAttr Importer::tensorAttr(const ::onnx::TensorProto &t,
                                  bool allowResource) {
  RankedTensorType type = tensorType(t);
  int64_t count = type.getNumElements();
  if (count > (int64_t(1) << 34))
    fail("tensor '" + t.name() + "' is too large");
  std::vector<char> bytes = tensorBytes(t, type.getElementType(), count);
  if (type.getElementType().isInteger(1)) {
    SmallVector<bool> bits(bytes.begin(), bytes.end());
    return DenseElementsAttr::get(type, ArrayRef<bool>(bits));
  }
  if (allowResource && count > options.inlineElementLimit) {
    std::string name = t.name().empty()
                           ? "tensor_" + std::to_string(resourceCounter++)
                           : t.name();
    auto blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(
        ArrayRef<char>(bytes), /*align=*/64);
    return DenseResourceElementsAttr::get(type, name, std::move(blob));
  }
  return DenseElementsAttr::getFromRawBuffer(type, ArrayRef<char>(bytes));
}

Attribute Importer::attribute(const ::onnx::AttributeProto &a,
                              const ::onnx::NodeProto &node) {
  using AP = ::onnx::AttributeProto;
  switch (a.type()) {
  case AP::INT:
    return builder.getIntegerAttr(builder.getIntegerType(64, /*isSigned=*/true),
                                  a.i());
  case AP::FLOAT:
    return builder.getF32FloatAttr(a.f());
  case AP::STRING:
    return builder.getStringAttr(a.s());
  case AP::INTS:
    return builder.getI64ArrayAttr(
        SmallVector<int64_t>(a.ints().begin(), a.ints().end()));
  case AP::FLOATS:
    return builder.getF32ArrayAttr(
        SmallVector<float>(a.floats().begin(), a.floats().end()));
  case AP::STRINGS: {
    SmallVector<StringRef> strs;
    for (const auto &s : a.strings())
      strs.push_back(StringAttr::get(&ctx, s).getValue());
    return builder.getStrArrayAttr(strs);
  }
  case AP::TENSOR:
    return tensorAttr(a.t(), /*allowResource=*/true);
  default:
    fail("attribute '" + a.name() + "' of node '" + node.name() + "' (" +
         node.op_type() + ") has unsupported kind " + AP::AttributeType_Name(a.type()));
  }
}

Value Importer::lookup(const std::string &name, const ::onnx::NodeProto &node) {
  if (name.empty())
    return noValue;
  auto it = values.find(name);
  if (it == values.end())
    fail("node '" + node.name() + "' (" + node.op_type() +
         ") uses undefined value '" + name + "'");
  return it->second;
}

void Importer::importNode(const ::onnx::NodeProto &node) {
  const std::string &domain = node.domain();
  std::string opName = "onnx." + node.op_type();
  auto registered = RegisteredOperationName::lookup(opName, &ctx);
  bool contrib = isKnownContribOp(domain, node.op_type());
  if ((domain != "" && domain != "ai.onnx" && !contrib) || !registered) {
    auto it = domainOpsets.find(domain);
    int64_t version = it != domainOpsets.end() ? it->second : opset;
    fail("unsupported op '" + node.op_type() + "' (domain '" +
         (domain.empty() ? std::string("ai.onnx") : domain) + "', opset " +
         std::to_string(version) + ") in node '" + node.name() + "'");
  }

  OperationState state(
      NameLoc::get(builder.getStringAttr(node.name().empty() ? node.op_type()
                                                             : node.name())),
      opName);
  for (const auto &in : node.input())
    state.operands.push_back(lookup(in, node));
  // Trailing optional inputs and outputs a node leaves out are `none`, so
  // every op has the operand and result count its ODS definition declares.
  if (node.op_type() == "MatMulNBits")
    for (const auto &a : node.attribute())
      if (a.name() == "bits" && a.i() != 4)
        fail("MatMulNBits node '" + node.name() + "': bits = " +
             std::to_string(a.i()) +
             " is not supported (kiln imports 4-bit weights only)");
  const ::onnx::OpSchema *schema =
      contrib ? ::onnx::OpSchemaRegistry::Schema(node.op_type(), 1, domain)
              : ::onnx::OpSchemaRegistry::Schema(node.op_type(),
                                                 options.targetOpset, "");
  size_t declaredOutputs = node.output_size();
  if (schema) {
    const auto &formals = schema->inputs();
    bool variadic = !formals.empty() &&
                    formals.back().GetOption() ==
                        ::onnx::OpSchema::FormalParameterOption::Variadic;
    if (!variadic)
      while (state.operands.size() < formals.size())
        state.operands.push_back(noValue);
    const auto &outs = schema->outputs();
    bool variadicOut = !outs.empty() &&
                       outs.back().GetOption() ==
                           ::onnx::OpSchema::FormalParameterOption::Variadic;
    if (!variadicOut)
      declaredOutputs = std::max(declaredOutputs, outs.size());
  }

  // onnx.Constant keeps one canonical `value` attribute.
  if (node.op_type() == "Constant") {
    for (const auto &a : node.attribute()) {
      Attribute value;
      if (a.name() == "value") {
        value = tensorAttr(a.t(), true);
      } else if (a.name() == "value_float") {
        value = DenseElementsAttr::get(
            RankedTensorType::get({}, builder.getF32Type()), a.f());
      } else if (a.name() == "value_floats") {
        SmallVector<float> v(a.floats().begin(), a.floats().end());
        value = DenseElementsAttr::get(
            RankedTensorType::get({(int64_t)v.size()}, builder.getF32Type()),
            ArrayRef<float>(v));
      } else if (a.name() == "value_int") {
        value = DenseElementsAttr::get(
            RankedTensorType::get({}, builder.getI64Type()), (int64_t)a.i());
      } else if (a.name() == "value_ints") {
        SmallVector<int64_t> v(a.ints().begin(), a.ints().end());
        value = DenseElementsAttr::get(
            RankedTensorType::get({(int64_t)v.size()}, builder.getI64Type()),
            ArrayRef<int64_t>(v));
      } else {
        fail("Constant node '" + node.name() + "' uses unsupported attribute '" +
             a.name() + "'");
      }
      state.addAttribute("value", value);
    }
  } else {
    // ODS names that clash with C++ or MLIR accessors carry a trailing '_'
    // (see python/gen_onnx_ods.py); map ONNX's names onto them.
    ArrayRef<StringAttr> declared = registered->getAttributeNames();
    for (const auto &a : node.attribute()) {
      std::string name = a.name();
      bool known = llvm::any_of(declared, [&](StringAttr d) { return d == name; });
      if (!known && llvm::any_of(declared, [&](StringAttr d) {
            return d.getValue() == name + "_";
          }))
        name += "_";
      state.addAttribute(name, attribute(a, node));
    }
  }

  bool allKnown = true;
  SmallVector<Type> types;
  for (const auto &out : node.output()) {
    if (out.empty()) {
      types.push_back(builder.getNoneType());
      continue;
    }
    auto it = knownTypes.find(out);
    Type t = it == knownTypes.end()
                 ? Type()
                 : valueType(*it->second, "value '" + out + "'");
    if (!t || !isa<RankedTensorType>(t))
      allKnown = false;
    types.push_back(t);
  }
  if (!allKnown) {
    // Fall back to the op's own shape inference.
    SmallVector<Type> inferred;
    auto info = registered->getInterface<InferTypeOpInterface>();
    if (info && succeeded(info->inferReturnTypes(
                    &ctx, state.location, state.operands,
                    state.attributes.getDictionary(&ctx), OpaqueProperties(nullptr),
                    state.regions, inferred)) &&
        inferred.size() == types.size()) {
      for (size_t i = 0; i < types.size(); ++i)
        if (!types[i] || !isa<RankedTensorType>(types[i]))
          types[i] = inferred[i];
    }
    for (size_t i = 0; i < types.size(); ++i)
      if (!types[i])
        fail("cannot infer the type of output '" + node.output(i) +
             "' of node '" + node.name() + "' (" + node.op_type() + ")");
  }
  while (types.size() < declaredOutputs)
    types.push_back(builder.getNoneType());
  state.addTypes(types);
  Operation *op = builder.create(state);
  if (failed(verify(op))) {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << "node '" << node.name() << "' (" << node.op_type()
       << ") is not valid";
    fail(os.str());
  }
  for (auto [name, result] : llvm::zip(node.output(), op->getResults()))
    if (!name.empty())
      values[name] = result;
}

OwningOpRef<ModuleOp> Importer::run(::onnx::ModelProto &model) {
  for (const auto &o : model.opset_import()) {
    domainOpsets[o.domain()] = o.version();
    if (o.domain().empty() || o.domain() == "ai.onnx")
      opset = o.version();
  }
  const auto &graph = model.graph();
  for (const auto &vi : graph.value_info())
    knownTypes[vi.name()] = &vi.type();
  for (const auto &vi : graph.output())
    knownTypes[vi.name()] = &vi.type();

  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  builder.setInsertionPointToEnd(module->getBody());

  llvm::StringSet<> initializerNames;
  for (const auto &init : graph.initializer())
    initializerNames.insert(init.name());

  SmallVector<Type> inputTypes;
  SmallVector<std::string> inputNames;
  SmallVector<SmallVector<StringRef>> inputDimNames;
  for (const auto &in : graph.input()) {
    if (initializerNames.contains(in.name()))
      continue;
    SmallVector<StringRef> dimNames;
    Type t = valueType(in.type(), "input '" + in.name() + "'", &dimNames);
    if (!isa<RankedTensorType>(t))
      fail("input '" + in.name() + "' has no shape");
    inputTypes.push_back(t);
    inputNames.push_back(in.name());
    inputDimNames.push_back(dimNames);
  }
  SmallVector<Type> outputTypes;
  for (const auto &out : graph.output())
    outputTypes.push_back(valueType(out.type(), "output '" + out.name() + "'"));

  auto fn = func::FuncOp::create(builder, UnknownLoc::get(&ctx),
                                 options.entryName,
                                 builder.getFunctionType(inputTypes, outputTypes));
  Block *entry = fn.addEntryBlock();
  for (size_t i = 0; i < inputNames.size(); ++i) {
    values[inputNames[i]] = entry->getArgument(i);
    fn.setArgAttr(i, "onnx.name", builder.getStringAttr(inputNames[i]));
    if (llvm::any_of(inputDimNames[i], [](StringRef s) { return !s.empty(); }))
      fn.setArgAttr(i, "onnx.dim_names",
                    builder.getStrArrayAttr(inputDimNames[i]));
  }
  for (int i = 0; i < graph.output_size(); ++i)
    fn.setResultAttr(i, "onnx.name", builder.getStringAttr(graph.output(i).name()));
  fn->setAttr("onnx.opset", builder.getI64IntegerAttr(opset));

  builder.setInsertionPointToStart(entry);
  noValue = builder.create(OperationState(UnknownLoc::get(&ctx),
                                          "onnx.NoValue", {}, {builder.getNoneType()}))
                ->getResult(0);
  for (const auto &init : graph.initializer()) {
    OperationState st(NameLoc::get(builder.getStringAttr(init.name())),
                      "onnx.Constant");
    ElementsAttr value = tensorAttr(init, /*allowResource=*/true);
    st.addAttribute("value", value);
    st.addTypes(value.getType());
    values[init.name()] = builder.create(st)->getResult(0);
  }
  for (const auto &node : graph.node())
    importNode(node);

  SmallVector<Value> results;
  for (int i = 0; i < graph.output_size(); ++i) {
    auto it = values.find(graph.output(i).name());
    if (it == values.end())
      fail("graph output '" + graph.output(i).name() + "' is never produced");
    results.push_back(it->second);
  }
  // Graph outputs keep the type the producing op has.
  fn.setType(builder.getFunctionType(inputTypes, ValueRange(results).getTypes()));
  func::ReturnOp::create(builder, UnknownLoc::get(&ctx), results);
  if (noValue.use_empty())
    noValue.getDefiningOp()->erase();
  return module;
}

} // namespace

OwningOpRef<ModuleOp> importOnnxFile(MLIRContext &ctx, llvm::StringRef path,
                                     const ImportOptions &options,
                                     std::string &error) {
  ctx.getOrLoadDialect<onnx::ONNXDialect>();
  ctx.getOrLoadDialect<func::FuncDialect>();
  try {
    registerContribSchemas();
    std::ifstream in(path.str(), std::ios::binary);
    if (!in)
      fail("cannot open '" + path.str() + "'");
    ::onnx::ModelProto model;
    if (!model.ParseFromIstream(&in))
      fail("'" + path.str() + "' is not a valid ONNX model (protobuf parse failed)");
    if (!model.has_graph())
      fail("'" + path.str() + "' has no graph");
    if (model.graph().node_size() == 0 && model.graph().output_size() == 0)
      fail("'" + path.str() + "' has an empty graph");

    SmallString<256> dir(path);
    llvm::sys::path::remove_filename(dir);
    if (dir.empty())
      dir = ".";

    // Dangling inputs first: ONNX's checker reports them over several lines.
    {
      std::set<std::string> defined;
      for (const auto &in : model.graph().input())
        defined.insert(in.name());
      for (const auto &init : model.graph().initializer())
        defined.insert(init.name());
      for (const auto &node : model.graph().node()) {
        for (const auto &in : node.input())
          if (!in.empty() && !defined.count(in))
            fail("input '" + in + "' of node '" + node.name() + "' (" +
                 node.op_type() +
                 ") is not a graph input, initializer or earlier output");
        for (const auto &out : node.output())
          defined.insert(out);
      }
      for (const auto &out : model.graph().output())
        if (!defined.count(out.name()))
          fail("graph output '" + out.name() + "' is never produced");
    }
    // Validate before touching anything: bad attributes, types,
    // external data outside the model's folder.
    try {
      ::onnx::checker::check_model(path.str());
    } catch (const std::exception &e) {
      std::string what = e.what();
      fail("invalid ONNX model: " + what.substr(0, what.find('\n')));
    }

    int64_t version = 0;
    for (const auto &o : model.opset_import())
      if (o.domain().empty() || o.domain() == "ai.onnx")
        version = o.version();
    if (version != 0 && version < options.targetOpset) {
      try {
        model = ::onnx::version_conversion::ConvertVersion(model,
                                                           options.targetOpset);
      } catch (const std::exception &) {
        // Keep the original: ops whose signature did not change still import.
      }
    }
    try {
      ::onnx::shape_inference::InferShapes(model);
    } catch (const std::exception &) {
      // Partial inference is fine: ops infer what is missing.
    }
    Importer importer(ctx, options, dir.str().str());
    return importer.run(model);
  } catch (const ImportError &e) {
    error = e.message;
  } catch (const std::exception &e) {
    error = std::string("ONNX library error: ") + e.what();
    error = error.substr(0, error.find('\n'));
  }
  return nullptr;
}

} // namespace kiln
