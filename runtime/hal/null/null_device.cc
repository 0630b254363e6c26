//===- null_device.cc - Every method returns Unimplemented ----------------===//
#include "runtime/hal/null/null_device.h"

namespace kiln::hal::null {
namespace {

Status NotYet(std::string_view what) {
  return UnimplementedError(StrCat("null driver: ", what, " is not implemented"));
}

class NullDevice final : public Device {
 public:
  std::string_view name() const override { return "null"; }
  StatusOr<std::shared_ptr<Buffer>> Allocate(uint64_t) override { return NotYet("Allocate"); }
  StatusOr<std::shared_ptr<Buffer>> WrapHostMemory(const void*, uint64_t) override {
    return NotYet("WrapHostMemory");
  }
  Status Upload(Buffer&, uint64_t, std::span<const uint8_t>) override { return NotYet("Upload"); }
  Status Download(const Buffer&, uint64_t, std::span<uint8_t>) override { return NotYet("Download"); }
  Status CopyBuffer(const Buffer&, uint64_t, Buffer&, uint64_t, uint64_t) override {
    return NotYet("CopyBuffer");
  }
  bool SupportsFormat(std::string_view) const override { return false; }
  StatusOr<std::unique_ptr<Executable>> LoadExecutable(const ExecutableSpec&) override {
    return NotYet("LoadExecutable");
  }
  Status Dispatch(const Executable&, int, std::span<const BufferBinding>, int64_t) override {
    return NotYet("Dispatch");
  }
  Status Wait() override { return NotYet("Wait"); }
  int64_t PreferredWorkgroupCount() const override { return 1; }
};

}  // namespace

StatusOr<std::unique_ptr<Device>> CreateNullDevice(const DeviceOptions&) {
  return std::unique_ptr<Device>(new NullDevice());
}

}  // namespace kiln::hal::null
