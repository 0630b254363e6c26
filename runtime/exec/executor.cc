//===- executor.cc - Run a Function of an artifact on a Device -------------===//
//
// The artifact was verified when it was opened, so operand counts and
// indices are known to be in range and every slot/reg is defined before it
// is read. What remains dynamic is checked here: shapes of the inputs, the
// values of index arithmetic, allocation sizes and reshape element counts.
#include "runtime/exec/executor.h"

#include <map>
#include <optional>
#include <string>

#include "runtime/exec/index_arith.h"

namespace kiln::exec {
namespace {

/// A register of tensors: a view into a device buffer.
using Slot = DeviceTensor;

template <typename T>
std::vector<T> ToVector(const flatbuffers::Vector<T>* v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

/// Name of dim `d` of a signature, "" when unnamed (dim_names may be empty).
std::string DimName(const fb::TensorSig& sig, uint32_t d) {
  const auto* names = sig.dim_names();
  return names && d < names->size() ? names->Get(d)->str() : std::string();
}

/// "[batch,3]": a signature's shape with dynamic dims named where possible.
std::string SigShapeToString(const fb::TensorSig& sig) {
  std::string out = "[";
  for (uint32_t i = 0; sig.shape() && i < sig.shape()->size(); ++i) {
    if (i) out += ",";
    int64_t d = sig.shape()->Get(i);
    std::string name = DimName(sig, i);
    out += d >= 0 ? std::to_string(d) : (name.empty() ? "?" : name);
  }
  return out + "]";
}

/// One execution of one Function: owns the register files.
/// An executable without kernels (a model that only reshapes or returns its
/// constants): nothing to hand to the device, and a SPIR-V module without an
/// entry point would not even be valid.
class EmptyExecutable final : public hal::Executable {
 public:
  const std::vector<hal::KernelInfo>& kernels() const override { return kernels_; }

 private:
  std::vector<hal::KernelInfo> kernels_;
};

class Interpreter {
 public:
  Interpreter(const artifact::Artifact& artifact, hal::Device& device, const ExecutorOptions& options,
              const std::vector<std::unique_ptr<hal::Executable>>& executables,
              const std::shared_ptr<hal::Buffer>& constants, const fb::Function& fn)
      : artifact_(artifact), device_(device), options_(options), executables_(executables),
        constants_(constants), fn_(fn), slots_(fn.num_slots()), regs_(fn.num_regs()) {}

  StatusOr<std::vector<io::NamedTensor>> Run(std::span<const io::Tensor* const> inputs) {
    {
      ProfileScope scope(options_.profile, "host: bind inputs");
      KILN_RETURN_IF_ERROR(BindInputs(inputs));
    }
    KILN_RETURN_IF_ERROR(ExecuteAll());
    ProfileScope scope(options_.profile, "host: read outputs");
    return ReadOutputs();
  }

  StatusOr<std::vector<DeviceTensor>> RunOnDevice(std::span<const DeviceTensor> inputs) {
    {
      ProfileScope scope(options_.profile, "host: bind inputs");
      KILN_RETURN_IF_ERROR(BindDeviceInputs(inputs));
    }
    KILN_RETURN_IF_ERROR(ExecuteAll());
    return TakeOutputs();
  }

 private:
  Status ExecuteAll() {
    const auto* instrs = fn_.instrs();
    for (uint32_t i = 0; instrs && i < instrs->size(); ++i) {
      const fb::Instr& instr = *instrs->Get(i);
      ProfileScope scope(options_.profile, ProfileName(instr));
      Status status = Execute(instr);
      if (options_.profile && status.ok() && instr.opcode() == fb::OpCode::Dispatch) status = device_.Wait();
      if (!status.ok())
        return status.Annotate(StrCat("function '", fn_.name()->str(), "' instr ", i, " (",
                                      fb::EnumNameOpCode(instr.opcode()), ")"));
    }
    return device_.Wait();
  }

  /// What the profile calls an instruction: the kernel for a dispatch, the
  /// kind of host work otherwise (index arithmetic and views are lumped).
  std::string_view ProfileName(const fb::Instr& instr) const {
    if (!options_.profile) return {};
    switch (instr.opcode()) {
      case fb::OpCode::Dispatch: {
        const auto* ops = instr.operands();
        return executables_[ops->Get(0)]->kernels()[ops->Get(1)].name;
      }
      case fb::OpCode::Alloc:
        return "host: alloc";
      case fb::OpCode::Copy:
        return "host: copy";
      default:
        return "host: index/views";
    }
  }

  Status CheckInputCount(size_t given) const {
    const uint32_t count = fn_.inputs() ? fn_.inputs()->size() : 0;
    if (given != count)
      return InvalidArgumentError(StrCat("function '", fn_.name()->str(), "' takes ", count,
                                         " inputs but ", given, " were given"));
    return OkStatus();
  }

  /// Checks input `i` against the signature: dtype, static dims, named
  /// dynamic dims agreeing across inputs (name -> (value, input)), and that
  /// `bytes` is what the shape needs.
  Status CheckInput(uint32_t i, DType dtype, const std::vector<int64_t>& given, uint64_t bytes,
                    std::map<std::string, std::pair<int64_t, std::string>>& named_dims) const {
    const fb::TensorSig& sig = *fn_.inputs()->Get(i);
    const std::string name = sig.name()->str();
    const std::string where = StrCat("input '", name, "'");
    const DType want = static_cast<DType>(sig.dtype());
    if (dtype != want)
      return InvalidArgumentError(StrCat(where, ": expected dtype ", DTypeName(want), " but got ", DTypeName(dtype)));
    std::vector<int64_t> shape = ToVector(sig.shape());
    bool match = shape.size() == given.size();
    for (size_t d = 0; match && d < shape.size(); ++d) match = shape[d] < 0 || shape[d] == given[d];
    if (!match)
      return InvalidArgumentError(StrCat(where, ": expected shape ", SigShapeToString(sig), " but got ",
                                         ShapeToString(given)));
    for (size_t d = 0; d < shape.size(); ++d) {
      std::string dim_name = DimName(sig, static_cast<uint32_t>(d));
      if (shape[d] >= 0 || dim_name.empty()) continue;
      auto [it, inserted] = named_dims.try_emplace(dim_name, given[d], name);
      if (!inserted && it->second.first != given[d])
        return InvalidArgumentError(StrCat(where, ": dim ", d, " ('", dim_name, "') is ", given[d],
                                           " but input '", it->second.second, "' has ", it->second.first));
    }
    KILN_ASSIGN_OR_RETURN(int64_t need, CheckedByteSize(dtype, given));
    if (static_cast<uint64_t>(need) != bytes)
      return InvalidArgumentError(StrCat(where, ": tensor holds ", bytes, " bytes but ", DTypeName(dtype),
                                         ShapeToString(given), " needs ", need));
    return OkStatus();
  }

  Status BindInputs(std::span<const io::Tensor* const> inputs) {
    KILN_RETURN_IF_ERROR(CheckInputCount(inputs.size()));
    std::map<std::string, std::pair<int64_t, std::string>> named_dims;
    for (uint32_t i = 0; i < inputs.size(); ++i) {
      const io::Tensor& t = *inputs[i];
      KILN_RETURN_IF_ERROR(CheckInput(i, t.dtype, t.shape, t.data.size(), named_dims));
      KILN_ASSIGN_OR_RETURN(Slot slot, NewSlot(t.dtype, t.shape));
      KILN_RETURN_IF_ERROR(device_.Upload(*slot.buffer, 0, t.data)
                               .Annotate(StrCat("input '", fn_.inputs()->Get(i)->name()->str(), "'")));
      slots_[fn_.input_slots()->Get(i)] = std::move(slot);
    }
    return OkStatus();
  }

  Status BindDeviceInputs(std::span<const DeviceTensor> inputs) {
    KILN_RETURN_IF_ERROR(CheckInputCount(inputs.size()));
    std::map<std::string, std::pair<int64_t, std::string>> named_dims;
    for (uint32_t i = 0; i < inputs.size(); ++i) {
      const DeviceTensor& t = inputs[i];
      const std::string where = StrCat("input '", fn_.inputs()->Get(i)->name()->str(), "'");
      KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(t.dtype, t.shape));
      if (!t.buffer || t.offset > t.buffer->size() || static_cast<uint64_t>(bytes) > t.buffer->size() - t.offset)
        return InvalidArgumentError(StrCat(where, ": ", DTypeName(t.dtype), ShapeToString(t.shape),
                                           " does not fit its device buffer"));
      KILN_RETURN_IF_ERROR(CheckInput(i, t.dtype, t.shape, static_cast<uint64_t>(bytes), named_dims));
      slots_[fn_.input_slots()->Get(i)] = t;
    }
    return OkStatus();
  }

  StatusOr<Slot> NewSlot(DType dtype, std::vector<int64_t> shape) {
    KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(dtype, shape));
    if (static_cast<uint64_t>(bytes) > options_.max_buffer_bytes)
      return ResourceExhaustedError(StrCat("buffer ", DTypeName(dtype), ShapeToString(shape), " of ", bytes,
                                           " bytes exceeds the limit of ", options_.max_buffer_bytes));
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<hal::Buffer> buffer, device_.Allocate(static_cast<uint64_t>(bytes)));
    return Slot{std::move(buffer), 0, dtype, std::move(shape)};
  }

  StatusOr<const Slot*> GetSlot(int64_t index) const {
    if (index < 0 || static_cast<size_t>(index) >= slots_.size() || !slots_[index])
      return InternalError(StrCat("slot ", index, " is not defined"));
    return &*slots_[index];
  }
  StatusOr<int64_t> GetReg(int64_t index) const {
    if (index < 0 || static_cast<size_t>(index) >= regs_.size() || !regs_[index])
      return InternalError(StrCat("reg ", index, " is not defined"));
    return *regs_[index];
  }
  /// Dims from regs[ops[first..]]; each must be >= 0.
  StatusOr<std::vector<int64_t>> DimsFromRegs(const std::vector<int64_t>& ops, size_t first) const {
    std::vector<int64_t> dims;
    for (size_t i = first; i < ops.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t d, GetReg(ops[i]));
      if (d < 0) return InvalidArgumentError(StrCat("negative dim ", d, " (reg ", ops[i], ")"));
      dims.push_back(d);
    }
    return dims;
  }

  Status Execute(const fb::Instr& instr) {
    const std::vector<int64_t> ops = ToVector(instr.operands());
    const int dst = instr.dst();
    switch (instr.opcode()) {
      case fb::OpCode::ConstIndex:
        regs_[dst] = ops[0];
        return OkStatus();
      case fb::OpCode::Dim: {
        KILN_ASSIGN_OR_RETURN(const Slot* s, GetSlot(ops[0]));
        if (ops[1] >= static_cast<int64_t>(s->shape.size()))
          return InvalidArgumentError(StrCat("dim ", ops[1], " of slot ", ops[0], " which has rank ", s->shape.size()));
        regs_[dst] = s->shape[ops[1]];
        return OkStatus();
      }
      case fb::OpCode::Arith: {
        const auto kind = static_cast<fb::ArithKind>(ops[0]);
        KILN_ASSIGN_OR_RETURN(int64_t a, GetReg(ops[1]));
        KILN_ASSIGN_OR_RETURN(int64_t b, GetReg(ops[2]));
        int64_t c = 0;
        if (ops.size() > 3) {
          KILN_ASSIGN_OR_RETURN(c, GetReg(ops[3]));
        }
        KILN_ASSIGN_OR_RETURN(regs_[dst], EvalArith(kind, a, b, c));
        return OkStatus();
      }
      case fb::OpCode::Alloc: {
        KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, DimsFromRegs(ops, 0));
        KILN_ASSIGN_OR_RETURN(slots_[dst], NewSlot(static_cast<DType>(instr.dtype()), std::move(dims)));
        return OkStatus();
      }
      case fb::OpCode::Constant: {
        const fb::Constant& c = *artifact_.model().constants()->Get(ops[0]);
        slots_[dst] = Slot{constants_, c.offset(), static_cast<DType>(c.dtype()), ToVector(c.shape())};
        return OkStatus();
      }
      case fb::OpCode::Dispatch: {
        const hal::Executable& exe = *executables_[ops[0]];
        const int kernel = static_cast<int>(ops[1]);
        std::vector<hal::BufferBinding> args;
        for (size_t i = 2; i < ops.size(); ++i) {
          KILN_ASSIGN_OR_RETURN(const Slot* s, GetSlot(ops[i]));
          args.push_back({s->buffer.get(), s->offset, s->dtype, s->shape});
        }
        const int64_t workgroups =
            exe.kernels()[kernel].distributable ? device_.PreferredWorkgroupCount() : 1;
        return device_.Dispatch(exe, kernel, args, workgroups);
      }
      case fb::OpCode::Copy: {
        KILN_ASSIGN_OR_RETURN(const Slot* src, GetSlot(ops[0]));
        KILN_ASSIGN_OR_RETURN(Slot copy, NewSlot(src->dtype, src->shape));
        KILN_RETURN_IF_ERROR(device_.CopyBuffer(*src->buffer, src->offset, *copy.buffer, 0, copy.buffer->size()));
        slots_[dst] = std::move(copy);
        return OkStatus();
      }
      case fb::OpCode::Reshape: {
        KILN_ASSIGN_OR_RETURN(const Slot* src, GetSlot(ops[0]));
        KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, DimsFromRegs(ops, 1));
        KILN_ASSIGN_OR_RETURN(int64_t from, CheckedElementCount(src->shape));
        KILN_ASSIGN_OR_RETURN(int64_t to, CheckedElementCount(dims));
        if (from != to)
          return InvalidArgumentError(StrCat("cannot reshape ", ShapeToString(src->shape), " (", from,
                                             " elements) to ", ShapeToString(dims), " (", to, " elements)"));
        Slot view = *src;
        view.shape = std::move(dims);
        slots_[dst] = std::move(view);
        return OkStatus();
      }
    }
    return InternalError("unknown opcode");
  }

  /// Output `i`'s slot, checked against the signature.
  StatusOr<const Slot*> OutputSlot(uint32_t i) const {
    const fb::TensorSig& sig = *fn_.outputs()->Get(i);
    KILN_ASSIGN_OR_RETURN(const Slot* s, GetSlot(fn_.output_slots()->Get(i)));
    std::vector<int64_t> shape = ToVector(sig.shape());
    bool match = s->dtype == static_cast<DType>(sig.dtype()) && shape.size() == s->shape.size();
    for (size_t d = 0; match && d < shape.size(); ++d) match = shape[d] < 0 || shape[d] == s->shape[d];
    if (!match)
      return InternalError(StrCat("output '", sig.name()->str(), "': the schedule produced ", DTypeName(s->dtype),
                                  ShapeToString(s->shape), " but the signature says ",
                                  DTypeName(static_cast<DType>(sig.dtype())), SigShapeToString(sig)));
    return s;
  }

  StatusOr<std::vector<io::NamedTensor>> ReadOutputs() {
    std::vector<io::NamedTensor> outputs;
    const uint32_t count = fn_.outputs() ? fn_.outputs()->size() : 0;
    for (uint32_t i = 0; i < count; ++i) {
      const std::string name = fn_.outputs()->Get(i)->name()->str();
      KILN_ASSIGN_OR_RETURN(const Slot* s, OutputSlot(i));
      KILN_ASSIGN_OR_RETURN(io::Tensor t, io::Tensor::Create(s->dtype, s->shape));
      KILN_RETURN_IF_ERROR(device_.Download(*s->buffer, s->offset, t.data).Annotate(StrCat("output '", name, "'")));
      outputs.push_back({name, std::move(t)});
    }
    return outputs;
  }

  StatusOr<std::vector<DeviceTensor>> TakeOutputs() {
    std::vector<DeviceTensor> outputs;
    const uint32_t count = fn_.outputs() ? fn_.outputs()->size() : 0;
    for (uint32_t i = 0; i < count; ++i) {
      KILN_ASSIGN_OR_RETURN(const Slot* s, OutputSlot(i));
      outputs.push_back(*s);
    }
    return outputs;
  }

  const artifact::Artifact& artifact_;
  hal::Device& device_;
  const ExecutorOptions& options_;
  const std::vector<std::unique_ptr<hal::Executable>>& executables_;
  const std::shared_ptr<hal::Buffer>& constants_;
  const fb::Function& fn_;
  std::vector<std::optional<Slot>> slots_;
  std::vector<std::optional<int64_t>> regs_;
};

}  // namespace

StatusOr<std::unique_ptr<Executor>> Executor::Create(const artifact::Artifact& artifact, hal::Device& device,
                                                     const ExecutorOptions& options) {
  std::unique_ptr<Executor> executor(new Executor(artifact, device, options));
  const auto* executables = artifact.model().executables();
  for (uint32_t e = 0; executables && e < executables->size(); ++e) {
    const fb::Executable& exe = *executables->Get(e);
    hal::ExecutableSpec spec;
    spec.format = exe.format()->str();
    spec.binary = artifact.executable_binary(static_cast<int>(e));
    for (uint32_t k = 0; exe.kernels() && k < exe.kernels()->size(); ++k) {
      const fb::Kernel& kernel = *exe.kernels()->Get(k);
      spec.kernels.push_back({kernel.name()->str(), ToVector(kernel.arg_ranks()), kernel.distributable()});
    }
    if (spec.kernels.empty()) {
      executor->executables_.push_back(std::make_unique<EmptyExecutable>());
      continue;
    }
    StatusOr<std::unique_ptr<hal::Executable>> loaded = device.LoadExecutable(spec);
    if (!loaded.ok()) return loaded.status().Annotate(StrCat("executable ", e, " (", spec.format, ")"));
    executor->executables_.push_back(std::move(loaded).value());
  }
  if (artifact.model().constants_section() >= 0) {
    std::span<const uint8_t> section = artifact.section(artifact.model().constants_section());
    KILN_ASSIGN_OR_RETURN(executor->constants_, device.WrapHostMemory(section.data(), section.size()));
  }
  return executor;
}

Executor::~Executor() = default;

const fb::Function* Executor::FindFunction(std::string_view name) const {
  return artifact_.FindFunction(name);
}

StatusOr<std::vector<io::NamedTensor>> Executor::RunPositional(std::string_view function,
                                                               std::span<const io::Tensor> inputs) {
  const fb::Function* fn = artifact_.FindFunction(function);
  if (!fn) return NotFoundError(StrCat("artifact has no function '", function, "'"));
  std::vector<const io::Tensor*> ptrs;
  for (const io::Tensor& t : inputs) ptrs.push_back(&t);
  return Interpreter(artifact_, device_, options_, executables_, constants_, *fn).Run(ptrs);
}

StatusOr<std::vector<DeviceTensor>> Executor::RunOnDevice(std::string_view function,
                                                         std::span<const DeviceTensor> inputs) {
  const fb::Function* fn = artifact_.FindFunction(function);
  if (!fn) return NotFoundError(StrCat("artifact has no function '", function, "'"));
  return Interpreter(artifact_, device_, options_, executables_, constants_, *fn).RunOnDevice(inputs);
}

StatusOr<DeviceTensor> Executor::Upload(const io::Tensor& tensor) {
  KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(tensor.dtype, tensor.shape));
  if (static_cast<uint64_t>(bytes) != tensor.data.size())
    return InvalidArgumentError(StrCat("tensor holds ", tensor.data.size(), " bytes but ", tensor.Describe(),
                                       " needs ", bytes));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<hal::Buffer> buffer, device_.Allocate(static_cast<uint64_t>(bytes)));
  KILN_RETURN_IF_ERROR(device_.Upload(*buffer, 0, tensor.data));
  return DeviceTensor{std::move(buffer), 0, tensor.dtype, tensor.shape};
}

StatusOr<io::Tensor> Executor::Download(const DeviceTensor& tensor) {
  KILN_ASSIGN_OR_RETURN(io::Tensor out, io::Tensor::Create(tensor.dtype, tensor.shape));
  if (!tensor.buffer) return InvalidArgumentError("downloading a tensor without a buffer");
  KILN_RETURN_IF_ERROR(device_.Download(*tensor.buffer, tensor.offset, out.data));
  return out;
}

StatusOr<io::Tensor> Executor::Download(const DeviceTensor& tensor, int64_t first, int64_t count) {
  KILN_ASSIGN_OR_RETURN(int64_t total, CheckedElementCount(tensor.shape));
  if (first < 0 || count < 0 || first > total || count > total - first)
    return OutOfRangeError(StrCat("elements [", first, ", ", first + count, ") of a tensor of ", total));
  KILN_ASSIGN_OR_RETURN(io::Tensor out, io::Tensor::Create(tensor.dtype, {count}));
  if (!tensor.buffer) return InvalidArgumentError("downloading a tensor without a buffer");
  const uint64_t elem = static_cast<uint64_t>(DTypeSize(tensor.dtype));
  KILN_RETURN_IF_ERROR(device_.Download(*tensor.buffer, tensor.offset + static_cast<uint64_t>(first) * elem, out.data));
  return out;
}

StatusOr<std::vector<io::NamedTensor>> Executor::Run(std::string_view function,
                                                     std::span<const io::NamedTensor> inputs) {
  const fb::Function* fn = artifact_.FindFunction(function);
  if (!fn) return NotFoundError(StrCat("artifact has no function '", function, "'"));
  const uint32_t count = fn->inputs() ? fn->inputs()->size() : 0;
  std::vector<const io::Tensor*> ordered(count, nullptr);
  for (const io::NamedTensor& input : inputs) {
    bool found = false;
    for (uint32_t i = 0; i < count && !found; ++i) {
      if (fn->inputs()->Get(i)->name()->string_view() != input.name) continue;
      if (ordered[i]) return InvalidArgumentError(StrCat("input '", input.name, "' is given twice"));
      ordered[i] = &input.tensor;
      found = true;
    }
    if (!found) {
      std::string known;
      for (uint32_t i = 0; i < count; ++i) known += StrCat(i ? ", " : "", fn->inputs()->Get(i)->name()->str());
      return InvalidArgumentError(StrCat("function '", function, "' has no input '", input.name,
                                         "' (inputs: ", known, ")"));
    }
  }
  for (uint32_t i = 0; i < count; ++i)
    if (!ordered[i]) return InvalidArgumentError(StrCat("missing input '", fn->inputs()->Get(i)->name()->str(), "'"));
  return Interpreter(artifact_, device_, options_, executables_, constants_, *fn).Run(ordered);
}

}  // namespace kiln::exec
