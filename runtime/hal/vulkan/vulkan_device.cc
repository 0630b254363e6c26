//===- vulkan_device.cc - The vulkan driver --------------------------------===//
#include "runtime/hal/vulkan/vulkan_device.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/hal/vulkan/pipeline_cache_file.h"
#include "runtime/hal/vulkan/spirv_module.h"
#include "runtime/hal/vulkan/vulkan_loader.h"

namespace kiln::hal::vulkan {
namespace {

/// Dispatches and copies recorded into one command buffer before it is
/// submitted without the host asking: enough to amortize a submission, few
/// enough that the device starts early on a long program.
constexpr int kMaxCommandsPerBatch = 64;
/// Storage-buffer descriptors in each batch's descriptor pool (a kernel has
/// at most this many arguments).
constexpr uint32_t kDescriptorsPerBatch = 1024;
/// Submitted batches before recording a new one waits for the oldest.
constexpr size_t kMaxBatchesInFlight = 8;
/// Largest staging buffer for Upload/Download without host-visible memory;
/// bigger transfers go in chunks.
constexpr uint64_t kMaxStagingBytes = uint64_t{64} << 20;
/// Most bytes of dropped buffers kept for reuse.
constexpr uint64_t kMaxPooledBytes = uint64_t{256} << 20;

/// VkBuffer size for `size` bytes: never 0 (kiln has empty tensors, Vulkan
/// no empty buffers), and rounded so that buffers of nearby sizes can reuse
/// each other's memory (at most ~6 % more).
uint64_t RoundedSize(uint64_t size) {
  const uint64_t granule = size <= (uint64_t{64} << 10) ? 256 : size <= (uint64_t{16} << 20) ? (uint64_t{64} << 10)
                                                                                             : (uint64_t{1} << 20);
  return std::max<uint64_t>(granule, (size + granule - 1) / granule * granule);
}

const char* DeviceTypeName(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

bool EnvIsSet(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

bool InRange(uint64_t offset, uint64_t size, uint64_t limit) { return offset <= limit && size <= limit - offset; }

/// Everything that outlives the Device object as long as a buffer or an
/// executable still uses it: the instance, the VkDevice, and the stream of
/// command buffers. Methods named *Locked expect `mu` to be held.
class Context {
 public:
  /// One command buffer with its fence and descriptor pool; `serial` orders
  /// batches (1, 2, ...), and they complete in that order.
  struct Batch {
    VkCommandBuffer cb = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    VkDescriptorPool pool = VK_NULL_HANDLE;
    uint64_t serial = 0;
    int commands = 0;
    uint32_t descriptors_left = 0;
    uint32_t sets_left = 0;
  };

  ~Context();

  VulkanApi vk;
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  uint32_t queue_family = 0;
  VkPhysicalDeviceProperties props{};
  VkPhysicalDeviceMemoryProperties memory{};
  uint64_t max_allocation = std::numeric_limits<uint64_t>::max();
  uint8_t device_uuid[VK_UUID_SIZE] = {};
  bool host_visible_buffers = false;  // Allocate maps buffers; no staging
  VkCommandPool command_pool = VK_NULL_HANDLE;
  VkPipelineCache pipeline_cache = VK_NULL_HANDLE;
  std::string pipeline_cache_path;
  std::vector<uint8_t> pipeline_cache_loaded;

  std::mutex mu;

  /// The open (recording) batch, with room for one more command using
  /// `descriptors` descriptors; submits the open one first when it is full.
  StatusOr<Batch*> OpenLocked(uint32_t descriptors);
  /// Ends and submits the open batch, if any.
  Status SubmitLocked();
  /// Submits what `serial` needs and returns when batches up to it are done.
  Status WaitLocked(uint64_t serial);
  /// Submits and waits for everything.
  Status WaitAllLocked() { return WaitLocked(next_serial_); }
  /// Destroys resources through `destroy` once no recorded or submitted
  /// batch can use them any more (now, when nothing is pending).
  void ReleaseLocked(std::function<void()> destroy);
  /// Recycles finished batches (waiting for those up to `wait_serial`) and
  /// runs the releases they were holding back.
  Status RetireLocked(uint64_t wait_serial);

  /// A global memory barrier: what compute shaders and transfers wrote
  /// before is visible to the ones after.
  void Barrier(VkCommandBuffer cb);

  /// Host-visible staging memory of at least `size` bytes.
  StatusOr<uint8_t*> StagingLocked(uint64_t size, VkBuffer* buffer);

  /// vkAllocateMemory of a type in `type_bits` with all `flags`.
  int FindMemoryType(uint32_t type_bits, VkMemoryPropertyFlags flags) const;

  /// The memory of a buffer: a VkBuffer bound to its own allocation.
  struct Memory {
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    uint8_t* mapped = nullptr;
  };
  /// Memory of a dropped buffer of VkBuffer size `size`, if one is pooled.
  std::optional<Memory> TakePooledLocked(uint64_t size);
  /// Keeps dropped memory (no batch uses it any more) for the next
  /// Allocate of the same size, as long as the pool has room: the executor
  /// allocates the same intermediates on every run, and vkAllocateMemory is
  /// slow on real drivers.
  void RecycleLocked(uint64_t size, Memory m);
  /// Frees the pooled memory (before retrying an allocation that failed).
  void DrainPoolLocked();

 private:
  StatusOr<std::unique_ptr<Batch>> NewBatch();
  void DestroyBatch(Batch& batch);

  Status lost_;  // once submission fails, every later stream call fails too
  std::unique_ptr<Batch> open_;
  std::deque<std::unique_ptr<Batch>> in_flight_;
  std::vector<std::unique_ptr<Batch>> free_;
  uint64_t next_serial_ = 0;  // serial of the newest batch opened so far
  uint64_t completed_serial_ = 0;
  std::deque<std::pair<uint64_t, std::function<void()>>> releases_;
  std::multimap<uint64_t, Memory> pool_;  // by VkBuffer size
  uint64_t pooled_bytes_ = 0;

  VkBuffer staging_ = VK_NULL_HANDLE;
  VkDeviceMemory staging_memory_ = VK_NULL_HANDLE;
  uint8_t* staging_ptr_ = nullptr;
  uint64_t staging_size_ = 0;
};

Context::~Context() {
  if (device) {
    vk.vkDeviceWaitIdle(device);
    RetireLocked(next_serial_).IgnoreError();
    for (auto& [serial, destroy] : releases_) destroy();
    releases_.clear();
    if (open_) DestroyBatch(*open_);
    for (auto& b : in_flight_) DestroyBatch(*b);
    for (auto& b : free_) DestroyBatch(*b);
    DrainPoolLocked();
    if (staging_) vk.vkDestroyBuffer(device, staging_, nullptr);
    if (staging_memory_) vk.vkFreeMemory(device, staging_memory_, nullptr);
    if (command_pool) vk.vkDestroyCommandPool(device, command_pool, nullptr);
    if (pipeline_cache) vk.vkDestroyPipelineCache(device, pipeline_cache, nullptr);
    vk.vkDestroyDevice(device, nullptr);
  }
  if (instance) vk.vkDestroyInstance(instance, nullptr);
}

void Context::DestroyBatch(Batch& b) {
  // The command buffer goes with the pool.
  if (b.fence) vk.vkDestroyFence(device, b.fence, nullptr);
  if (b.pool) vk.vkDestroyDescriptorPool(device, b.pool, nullptr);
}

int Context::FindMemoryType(uint32_t type_bits, VkMemoryPropertyFlags flags) const {
  for (uint32_t i = 0; i < memory.memoryTypeCount; ++i)
    if ((type_bits & (1u << i)) && (memory.memoryTypes[i].propertyFlags & flags) == flags) return static_cast<int>(i);
  return -1;
}

std::optional<Context::Memory> Context::TakePooledLocked(uint64_t size) {
  auto it = pool_.find(size);
  if (it == pool_.end()) return std::nullopt;
  Memory m = it->second;
  pool_.erase(it);
  pooled_bytes_ -= size;
  return m;
}

void Context::RecycleLocked(uint64_t size, Memory m) {
  if (pooled_bytes_ + size <= kMaxPooledBytes) {
    pool_.emplace(size, m);
    pooled_bytes_ += size;
    return;
  }
  vk.vkDestroyBuffer(device, m.buffer, nullptr);
  vk.vkFreeMemory(device, m.memory, nullptr);  // unmaps too
}

void Context::DrainPoolLocked() {
  for (auto& [size, m] : pool_) {
    vk.vkDestroyBuffer(device, m.buffer, nullptr);
    vk.vkFreeMemory(device, m.memory, nullptr);
  }
  pool_.clear();
  pooled_bytes_ = 0;
}

StatusOr<std::unique_ptr<Context::Batch>> Context::NewBatch() {
  auto b = std::make_unique<Batch>();
  VkCommandBufferAllocateInfo cb_info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cb_info.commandPool = command_pool;
  cb_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cb_info.commandBufferCount = 1;
  KILN_RETURN_IF_ERROR(VkCheck(vk.vkAllocateCommandBuffers(device, &cb_info, &b->cb), "vkAllocateCommandBuffers"));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  Status status = VkCheck(vk.vkCreateFence(device, &fence_info, nullptr, &b->fence), "vkCreateFence");
  if (status.ok()) {
    VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kDescriptorsPerBatch};
    VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    pool_info.maxSets = kMaxCommandsPerBatch;
    pool_info.poolSizeCount = 1;
    pool_info.pPoolSizes = &size;
    status = VkCheck(vk.vkCreateDescriptorPool(device, &pool_info, nullptr, &b->pool), "vkCreateDescriptorPool");
  }
  if (!status.ok()) {
    DestroyBatch(*b);  // the command buffer stays in the pool until the pool goes
    return status;
  }
  return b;
}

StatusOr<Context::Batch*> Context::OpenLocked(uint32_t descriptors) {
  if (!lost_.ok()) return lost_;
  if (open_ && (open_->commands >= kMaxCommandsPerBatch || open_->descriptors_left < descriptors ||
                (descriptors > 0 && open_->sets_left == 0)))
    KILN_RETURN_IF_ERROR(SubmitLocked());
  if (open_) return open_.get();

  KILN_RETURN_IF_ERROR(RetireLocked(0));
  if (free_.empty() && in_flight_.size() >= kMaxBatchesInFlight)
    KILN_RETURN_IF_ERROR(RetireLocked(in_flight_.front()->serial));
  std::unique_ptr<Batch> b;
  if (!free_.empty()) {
    b = std::move(free_.back());
    free_.pop_back();
  } else {
    KILN_ASSIGN_OR_RETURN(b, NewBatch());
  }
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  if (Status s = VkCheck(vk.vkBeginCommandBuffer(b->cb, &begin), "vkBeginCommandBuffer"); !s.ok()) {
    free_.push_back(std::move(b));
    return s;
  }
  b->serial = ++next_serial_;
  b->commands = 0;
  b->descriptors_left = kDescriptorsPerBatch;
  b->sets_left = kMaxCommandsPerBatch;
  open_ = std::move(b);
  return open_.get();
}

void Context::Barrier(VkCommandBuffer cb) {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                          VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vk.vkCmdPipelineBarrier(cb, stages, stages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

Status Context::SubmitLocked() {
  if (!lost_.ok()) return lost_;
  if (!open_) return OkStatus();
  // Make the batch's writes visible to the host (mapped memory) once its
  // fence signals.
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vk.vkCmdPipelineBarrier(open_->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                          VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &barrier, 0, nullptr, 0, nullptr);
  Status status = VkCheck(vk.vkEndCommandBuffer(open_->cb), "vkEndCommandBuffer");
  if (status.ok()) {
    VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &open_->cb;
    status = VkCheck(vk.vkQueueSubmit(queue, 1, &submit, open_->fence), "vkQueueSubmit");
  }
  if (!status.ok()) {
    // The batch's work is lost, and whoever waits for it would wait forever.
    lost_ = status;
    return status;
  }
  in_flight_.push_back(std::move(open_));
  return OkStatus();
}

Status Context::RetireLocked(uint64_t wait_serial) {
  while (!in_flight_.empty()) {
    Batch& b = *in_flight_.front();
    VkResult r = vk.vkWaitForFences(device, 1, &b.fence, VK_TRUE,
                                    b.serial <= wait_serial ? std::numeric_limits<uint64_t>::max() : 0);
    if (r == VK_TIMEOUT) break;
    if (r != VK_SUCCESS) {
      lost_ = VkCheck(r, "vkWaitForFences");
      return lost_;
    }
    completed_serial_ = b.serial;
    KILN_RETURN_IF_ERROR(VkCheck(vk.vkResetFences(device, 1, &b.fence), "vkResetFences"));
    KILN_RETURN_IF_ERROR(VkCheck(vk.vkResetDescriptorPool(device, b.pool, 0), "vkResetDescriptorPool"));
    free_.push_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
  }
  while (!releases_.empty() && releases_.front().first <= completed_serial_) {
    releases_.front().second();
    releases_.pop_front();
  }
  return OkStatus();
}

Status Context::WaitLocked(uint64_t serial) {
  if (serial <= completed_serial_) return OkStatus();
  if (open_ && open_->serial <= serial) KILN_RETURN_IF_ERROR(SubmitLocked());
  if (!lost_.ok()) return lost_;
  return RetireLocked(serial);
}

void Context::ReleaseLocked(std::function<void()> destroy) {
  if (next_serial_ <= completed_serial_) {
    destroy();
    return;
  }
  releases_.emplace_back(next_serial_, std::move(destroy));
}

StatusOr<uint8_t*> Context::StagingLocked(uint64_t size, VkBuffer* buffer) {
  if (staging_size_ < size) {
    // Nothing uses the old one: every staging transfer waits for its batch.
    if (staging_) vk.vkDestroyBuffer(device, staging_, nullptr);
    if (staging_memory_) vk.vkFreeMemory(device, staging_memory_, nullptr);
    staging_ = VK_NULL_HANDLE;
    staging_memory_ = VK_NULL_HANDLE;
    staging_ptr_ = nullptr;
    staging_size_ = 0;
    VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    info.size = size;
    info.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    KILN_RETURN_IF_ERROR(VkCheck(vk.vkCreateBuffer(device, &info, nullptr, &staging_), "vkCreateBuffer (staging)"));
    VkMemoryRequirements req;
    vk.vkGetBufferMemoryRequirements(device, staging_, &req);
    int type = FindMemoryType(req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    if (type < 0) return UnavailableError("vulkan: the device has no host-visible coherent memory for staging");
    VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    alloc.allocationSize = req.size;
    alloc.memoryTypeIndex = static_cast<uint32_t>(type);
    KILN_RETURN_IF_ERROR(VkCheck(vk.vkAllocateMemory(device, &alloc, nullptr, &staging_memory_), "vkAllocateMemory (staging)"));
    KILN_RETURN_IF_ERROR(VkCheck(vk.vkBindBufferMemory(device, staging_, staging_memory_, 0), "vkBindBufferMemory"));
    void* ptr = nullptr;
    KILN_RETURN_IF_ERROR(VkCheck(vk.vkMapMemory(device, staging_memory_, 0, VK_WHOLE_SIZE, 0, &ptr), "vkMapMemory"));
    staging_ptr_ = static_cast<uint8_t*>(ptr);
    staging_size_ = size;
  }
  *buffer = staging_;
  return staging_ptr_;
}

/// Device memory; destroyed through the context once no batch uses it.
class VulkanBuffer final : public Buffer {
 public:
  VulkanBuffer(std::shared_ptr<Context> ctx, uint64_t size, bool read_only)
      : Buffer(size, read_only), ctx_(std::move(ctx)) {}
  ~VulkanBuffer() override {
    Context* ctx = ctx_.get();
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (!buffer_ || !memory_) {  // Allocate failed half-way
      if (buffer_) ctx->vk.vkDestroyBuffer(ctx->device, buffer_, nullptr);
      if (memory_) ctx->vk.vkFreeMemory(ctx->device, memory_, nullptr);
      return;
    }
    ctx->ReleaseLocked([ctx, size = vk_size_, m = Context::Memory{buffer_, memory_, mapped_}] {
      ctx->RecycleLocked(size, m);
    });
  }

  const Context* ctx() const { return ctx_.get(); }

  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  uint64_t vk_size_ = 0;           // size of the VkBuffer: RoundedSize(size())
  uint8_t* mapped_ = nullptr;    // persistent mapping when host-visible
  mutable uint64_t last_use_ = 0;  // serial of the newest batch that uses it

 private:
  std::shared_ptr<Context> ctx_;
};

struct Kernel {
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
  uint32_t push_constant_bytes = 0;
};

class VulkanExecutable final : public Executable {
 public:
  VulkanExecutable(std::shared_ptr<Context> ctx, std::vector<KernelInfo> infos)
      : ctx_(std::move(ctx)), infos_(std::move(infos)) {}
  ~VulkanExecutable() override {
    Context* ctx = ctx_.get();
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->ReleaseLocked([ctx, kernels = std::move(kernels_)] {
      for (const Kernel& k : kernels) {
        if (k.pipeline) ctx->vk.vkDestroyPipeline(ctx->device, k.pipeline, nullptr);
        if (k.layout) ctx->vk.vkDestroyPipelineLayout(ctx->device, k.layout, nullptr);
        if (k.set_layout) ctx->vk.vkDestroyDescriptorSetLayout(ctx->device, k.set_layout, nullptr);
      }
    });
  }
  const std::vector<KernelInfo>& kernels() const override { return infos_; }
  const Context* ctx() const { return ctx_.get(); }

  std::vector<Kernel> kernels_;  // parallel to infos_

 private:
  std::shared_ptr<Context> ctx_;
  std::vector<KernelInfo> infos_;
};

class VulkanDevice final : public Device {
 public:
  VulkanDevice(std::shared_ptr<Context> ctx) : ctx_(std::move(ctx)) {}

  ~VulkanDevice() override {
    std::lock_guard<std::mutex> lock(ctx_->mu);
    ctx_->WaitAllLocked().IgnoreError();
    SavePipelineCache();
  }

  std::string_view name() const override { return "vulkan"; }

  StatusOr<std::shared_ptr<Buffer>> Allocate(uint64_t size) override { return NewBuffer(size, /*read_only=*/false); }

  StatusOr<std::shared_ptr<Buffer>> WrapHostMemory(const void* data, uint64_t size) override {
    if (!data && size) return InvalidArgumentError("vulkan: wrapping null memory");
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<Buffer> buffer, NewBuffer(size, /*read_only=*/true));
    std::lock_guard<std::mutex> lock(ctx_->mu);
    KILN_RETURN_IF_ERROR(UploadLocked(static_cast<VulkanBuffer&>(*buffer), 0, {static_cast<const uint8_t*>(data), size}));
    return buffer;
  }

  Status Upload(Buffer& buffer, uint64_t offset, std::span<const uint8_t> data) override {
    KILN_ASSIGN_OR_RETURN(const VulkanBuffer* b, Check(buffer, offset, data.size(), "Upload"));
    if (buffer.read_only()) return FailedPreconditionError("vulkan: Upload into a read-only buffer");
    std::lock_guard<std::mutex> lock(ctx_->mu);
    return UploadLocked(const_cast<VulkanBuffer&>(*b), offset, data);
  }

  Status Download(const Buffer& buffer, uint64_t offset, std::span<uint8_t> out) override {
    KILN_ASSIGN_OR_RETURN(const VulkanBuffer* b, Check(buffer, offset, out.size(), "Download"));
    std::lock_guard<std::mutex> lock(ctx_->mu);
    KILN_RETURN_IF_ERROR(ctx_->WaitLocked(b->last_use_));
    if (out.empty()) return OkStatus();
    if (b->mapped_) {
      std::memcpy(out.data(), b->mapped_ + offset, out.size());
      return OkStatus();
    }
    for (uint64_t done = 0; done < out.size();) {
      const uint64_t chunk = std::min<uint64_t>(out.size() - done, kMaxStagingBytes);
      VkBuffer staging;
      KILN_ASSIGN_OR_RETURN(uint8_t * ptr, ctx_->StagingLocked(chunk, &staging));
      KILN_RETURN_IF_ERROR(RecordCopyLocked(b->buffer_, offset + done, staging, 0, chunk));
      KILN_RETURN_IF_ERROR(ctx_->WaitAllLocked());
      std::memcpy(out.data() + done, ptr, chunk);
      done += chunk;
    }
    return OkStatus();
  }

  Status CopyBuffer(const Buffer& src, uint64_t src_offset, Buffer& dst, uint64_t dst_offset,
                    uint64_t size) override {
    KILN_ASSIGN_OR_RETURN(const VulkanBuffer* s, Check(src, src_offset, size, "CopyBuffer source"));
    KILN_ASSIGN_OR_RETURN(const VulkanBuffer* d, Check(dst, dst_offset, size, "CopyBuffer destination"));
    if (dst.read_only()) return FailedPreconditionError("vulkan: CopyBuffer into a read-only buffer");
    if (size == 0) return OkStatus();
    std::lock_guard<std::mutex> lock(ctx_->mu);
    KILN_RETURN_IF_ERROR(RecordCopyLocked(s->buffer_, src_offset, d->buffer_, dst_offset, size));
    s->last_use_ = d->last_use_ = current_serial_;
    return OkStatus();
  }

  bool SupportsFormat(std::string_view format) const override { return format == "spirv"; }

  StatusOr<std::unique_ptr<Executable>> LoadExecutable(const ExecutableSpec& spec) override;

  Status Dispatch(const Executable& executable, int kernel, std::span<const BufferBinding> args,
                  int64_t workgroup_count) override;

  Status Wait() override {
    std::lock_guard<std::mutex> lock(ctx_->mu);
    return ctx_->WaitAllLocked();
  }

  /// Kernels are grid-stride loops over 64-invocation workgroups (the
  /// compiler's choice), so any count is correct; this one only has to fill
  /// the device. 256 workgroups = 16K invocations: several resident
  /// workgroups per compute unit on integrated GPUs and on lavapipe (which
  /// runs one workgroup per CPU thread at a time), while workgroups with no
  /// element to process exit at once on small tensors. Discrete GPUs have
  /// tens of compute units with room for 1-2K invocations each, so they get
  /// 1024.
  int64_t PreferredWorkgroupCount() const override {
    return ctx_->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ? 1024 : 256;
  }

 private:
  StatusOr<std::shared_ptr<Buffer>> NewBuffer(uint64_t size, bool read_only);

  /// The buffer as a VulkanBuffer of this device, with [offset, offset+size)
  /// inside it.
  StatusOr<const VulkanBuffer*> Check(const Buffer& buffer, uint64_t offset, uint64_t size,
                                      std::string_view op) const {
    const auto* b = dynamic_cast<const VulkanBuffer*>(&buffer);
    if (!b || b->ctx() != ctx_.get())
      return InvalidArgumentError(StrCat("vulkan: ", op, ": the buffer was not allocated by this device"));
    if (!InRange(offset, size, buffer.size()))
      return OutOfRangeError(StrCat("vulkan: ", op, " of ", size, " bytes at offset ", offset,
                                    " is outside the buffer of ", buffer.size(), " bytes"));
    return b;
  }

  /// Records a copy into the stream, after a barrier.
  Status RecordCopyLocked(VkBuffer src, uint64_t src_offset, VkBuffer dst, uint64_t dst_offset, uint64_t size) {
    KILN_ASSIGN_OR_RETURN(Context::Batch * batch, ctx_->OpenLocked(0));
    ctx_->Barrier(batch->cb);
    VkBufferCopy region{src_offset, dst_offset, size};
    ctx_->vk.vkCmdCopyBuffer(batch->cb, src, dst, 1, &region);
    ++batch->commands;
    current_serial_ = batch->serial;
    return OkStatus();
  }

  Status UploadLocked(VulkanBuffer& b, uint64_t offset, std::span<const uint8_t> data) {
    if (data.empty()) return OkStatus();
    if (b.mapped_) {
      // Batches that use the buffer must finish before the host writes it.
      KILN_RETURN_IF_ERROR(ctx_->WaitLocked(b.last_use_));
      std::memcpy(b.mapped_ + offset, data.data(), data.size());
      return OkStatus();
    }
    // Through staging, in stream order (after whatever uses the buffer).
    for (uint64_t done = 0; done < data.size();) {
      const uint64_t chunk = std::min<uint64_t>(data.size() - done, kMaxStagingBytes);
      VkBuffer staging;
      KILN_ASSIGN_OR_RETURN(uint8_t * ptr, ctx_->StagingLocked(chunk, &staging));
      std::memcpy(ptr, data.data() + done, chunk);
      KILN_RETURN_IF_ERROR(RecordCopyLocked(staging, 0, b.buffer_, offset + done, chunk));
      b.last_use_ = current_serial_;
      KILN_RETURN_IF_ERROR(ctx_->WaitAllLocked());  // the staging buffer is free again
      done += chunk;
    }
    return OkStatus();
  }

  void SavePipelineCache() {
    size_t size = 0;
    if (ctx_->vk.vkGetPipelineCacheData(ctx_->device, ctx_->pipeline_cache, &size, nullptr) != VK_SUCCESS || !size)
      return;
    std::vector<uint8_t> data(size);
    if (ctx_->vk.vkGetPipelineCacheData(ctx_->device, ctx_->pipeline_cache, &size, data.data()) != VK_SUCCESS) return;
    data.resize(size);
    if (data == ctx_->pipeline_cache_loaded) return;  // nothing new
    WritePipelineCache(ctx_->pipeline_cache_path, data);
  }

  std::shared_ptr<Context> ctx_;
  uint64_t current_serial_ = 0;
};

StatusOr<std::shared_ptr<Buffer>> VulkanDevice::NewBuffer(uint64_t size, bool read_only) {
  Context& c = *ctx_;
  const uint64_t vk_size = RoundedSize(size);
  if (size > c.max_allocation || vk_size < size)
    return ResourceExhaustedError(StrCat("vulkan: cannot allocate ", size, " bytes (the device's largest allocation is ",
                                         c.max_allocation, " bytes)"));
  auto buffer = std::make_shared<VulkanBuffer>(ctx_, size, read_only);
  buffer->vk_size_ = vk_size;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (std::optional<Context::Memory> m = c.TakePooledLocked(vk_size)) {
      buffer->buffer_ = m->buffer;
      buffer->memory_ = m->memory;
      buffer->mapped_ = m->mapped;
      return std::shared_ptr<Buffer>(std::move(buffer));
    }
  }
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = vk_size;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VkBuffer handle = VK_NULL_HANDLE;
  Status status = VkCheck(c.vk.vkCreateBuffer(c.device, &info, nullptr, &handle), "vkCreateBuffer");
  if (!status.ok()) return status.Annotate(StrCat("allocating ", size, " bytes"));
  buffer->buffer_ = handle;
  VkMemoryRequirements req;
  c.vk.vkGetBufferMemoryRequirements(c.device, buffer->buffer_, &req);
  constexpr VkMemoryPropertyFlags kUnified =
      VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  int type = c.host_visible_buffers ? c.FindMemoryType(req.memoryTypeBits, kUnified) : -1;
  const bool mapped = type >= 0;
  if (type < 0) type = c.FindMemoryType(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  if (type < 0) type = c.FindMemoryType(req.memoryTypeBits, 0);
  if (type < 0) return InternalError("vulkan: no memory type can hold a storage buffer");
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = static_cast<uint32_t>(type);
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkResult r = c.vk.vkAllocateMemory(c.device, &alloc, nullptr, &memory);
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
    std::lock_guard<std::mutex> lock(c.mu);  // pooled memory may be what is missing
    c.DrainPoolLocked();
    r = c.vk.vkAllocateMemory(c.device, &alloc, nullptr, &memory);
  }
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    return ResourceExhaustedError(StrCat("vulkan: out of memory allocating ", size, " bytes (vkAllocateMemory: ",
                                         VkResultName(r), ")"));
  KILN_RETURN_IF_ERROR(VkCheck(r, "vkAllocateMemory"));
  buffer->memory_ = memory;
  KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkBindBufferMemory(c.device, buffer->buffer_, buffer->memory_, 0), "vkBindBufferMemory"));
  if (mapped) {
    void* ptr = nullptr;
    KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkMapMemory(c.device, buffer->memory_, 0, VK_WHOLE_SIZE, 0, &ptr), "vkMapMemory"));
    buffer->mapped_ = static_cast<uint8_t*>(ptr);
  }
  return std::shared_ptr<Buffer>(std::move(buffer));
}

StatusOr<std::unique_ptr<Executable>> VulkanDevice::LoadExecutable(const ExecutableSpec& spec) {
  if (spec.format != "spirv")
    return InvalidArgumentError(StrCat("vulkan: cannot load '", spec.format, "' executables (only spirv)"));
  KILN_ASSIGN_OR_RETURN(SpirvModule module, ParseSpirvModule(spec.binary));
  Context& c = *ctx_;
  const VkPhysicalDeviceLimits& limits = c.props.limits;
  const uint32_t max_args = std::min({limits.maxPerStageDescriptorStorageBuffers,
                                      limits.maxDescriptorSetStorageBuffers, kDescriptorsPerBatch});
  // The compiler declares ONE push-constant block per module, sized for the
  // kernel with the most dims; every entry point's pipeline layout must cover
  // that whole block, so all kernels get the module-wide size (their own
  // dims first, zeros after).
  uint32_t module_push_bytes = 0;
  for (const KernelInfo& kernel : spec.kernels) {
    KILN_RETURN_IF_ERROR(module.CheckKernel(kernel.name));
    if (kernel.arg_ranks.size() > max_args)
      return InvalidArgumentError(StrCat("vulkan: kernel '", kernel.name, "' has ", kernel.arg_ranks.size(),
                                         " arguments; the device binds at most ", max_args, " storage buffers"));
    uint64_t words = 0;
    for (int rank : kernel.arg_ranks) {
      if (rank < 0) return InvalidArgumentError(StrCat("vulkan: kernel '", kernel.name, "' has a negative rank"));
      words += static_cast<uint64_t>(rank);
    }
    if (words * 4 > limits.maxPushConstantsSize)
      return InvalidArgumentError(StrCat("vulkan: kernel '", kernel.name, "' needs ", words * 4,
                                         " bytes of push constants (one int32 per argument dim), more than the device's "
                                         "maxPushConstantsSize of ", limits.maxPushConstantsSize));
    module_push_bytes = std::max(module_push_bytes, static_cast<uint32_t>(words * 4));
  }

  VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  module_info.codeSize = module.words.size() * 4;
  module_info.pCode = module.words.data();
  VkShaderModule shader = VK_NULL_HANDLE;
  KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkCreateShaderModule(c.device, &module_info, nullptr, &shader), "vkCreateShaderModule"));

  auto exe = std::make_unique<VulkanExecutable>(ctx_, spec.kernels);
  Status status;
  for (const KernelInfo& info : spec.kernels) {
    Kernel& k = exe->kernels_.emplace_back();
    std::vector<VkDescriptorSetLayoutBinding> bindings(info.arg_ranks.size());
    for (size_t j = 0; j < bindings.size(); ++j) {
      bindings[j].binding = static_cast<uint32_t>(j);
      bindings[j].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      bindings[j].descriptorCount = 1;
      bindings[j].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    set_info.bindingCount = static_cast<uint32_t>(bindings.size());
    set_info.pBindings = bindings.data();
    status = VkCheck(c.vk.vkCreateDescriptorSetLayout(c.device, &set_info, nullptr, &k.set_layout),
                     "vkCreateDescriptorSetLayout");
    if (!status.ok()) break;

    k.push_constant_bytes = module_push_bytes;
    VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, k.push_constant_bytes};
    VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    layout_info.setLayoutCount = 1;
    layout_info.pSetLayouts = &k.set_layout;
    layout_info.pushConstantRangeCount = k.push_constant_bytes ? 1 : 0;
    layout_info.pPushConstantRanges = &range;
    status = VkCheck(c.vk.vkCreatePipelineLayout(c.device, &layout_info, nullptr, &k.layout), "vkCreatePipelineLayout");
    if (!status.ok()) break;

    VkComputePipelineCreateInfo pipeline_info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    pipeline_info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    pipeline_info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    pipeline_info.stage.module = shader;
    pipeline_info.stage.pName = info.name.c_str();
    pipeline_info.layout = k.layout;
    status = VkCheck(c.vk.vkCreateComputePipelines(c.device, c.pipeline_cache, 1, &pipeline_info, nullptr, &k.pipeline),
                     "vkCreateComputePipelines");
    if (!status.ok()) {
      k.pipeline = VK_NULL_HANDLE;
      status = status.Annotate(StrCat("kernel '", info.name, "'"));
      break;
    }
  }
  c.vk.vkDestroyShaderModule(c.device, shader, nullptr);
  if (!status.ok()) return status;  // exe's destructor frees what was made
  return std::unique_ptr<Executable>(std::move(exe));
}

Status VulkanDevice::Dispatch(const Executable& executable, int kernel, std::span<const BufferBinding> args,
                              int64_t workgroup_count) {
  const auto* exe = dynamic_cast<const VulkanExecutable*>(&executable);
  if (!exe || exe->ctx() != ctx_.get())
    return InvalidArgumentError("vulkan: executable was not loaded by this vulkan device");
  if (kernel < 0 || static_cast<size_t>(kernel) >= exe->kernels().size())
    return OutOfRangeError(StrCat("vulkan: kernel index ", kernel, " is out of range"));
  const KernelInfo& info = exe->kernels()[kernel];
  const Kernel& k = exe->kernels_[kernel];
  if (args.size() != info.arg_ranks.size())
    return InvalidArgumentError(StrCat("vulkan: kernel '", info.name, "' takes ", info.arg_ranks.size(),
                                       " arguments, got ", args.size()));
  if (workgroup_count < 1) return InvalidArgumentError(StrCat("vulkan: workgroup count ", workgroup_count, " < 1"));
  const VkPhysicalDeviceLimits& limits = ctx_->props.limits;

  // Push constants: every argument's dims in order, as int32, then zeros up
  // to the module-wide block size.
  std::vector<int32_t> push;
  push.reserve(k.push_constant_bytes / 4);
  std::vector<VkDescriptorBufferInfo> infos(args.size());
  for (size_t j = 0; j < args.size(); ++j) {
    const BufferBinding& arg = args[j];
    if (static_cast<int64_t>(arg.shape.size()) != info.arg_ranks[j])
      return InvalidArgumentError(StrCat("vulkan: kernel '", info.name, "' argument ", j, " has rank ",
                                         arg.shape.size(), ", expected ", info.arg_ranks[j]));
    for (int64_t d : arg.shape) {
      if (d < 0 || d > std::numeric_limits<int32_t>::max())
        return InvalidArgumentError(StrCat("vulkan: kernel '", info.name, "' argument ", j, " has dim ", d,
                                           ", outside the int32 range of the push constants"));
      push.push_back(static_cast<int32_t>(d));
    }
    KILN_ASSIGN_OR_RETURN(int64_t bytes, CheckedByteSize(arg.dtype, arg.shape));
    if (!arg.buffer) return InvalidArgumentError(StrCat("vulkan: kernel '", info.name, "' argument ", j, " has no buffer"));
    KILN_ASSIGN_OR_RETURN(const VulkanBuffer* b,
                          Check(*arg.buffer, arg.offset, static_cast<uint64_t>(bytes),
                                StrCat("kernel '", info.name, "' argument ", j)));
    if (arg.offset % limits.minStorageBufferOffsetAlignment != 0)
      return InvalidArgumentError(StrCat("vulkan: kernel '", info.name, "' argument ", j, " is at offset ", arg.offset,
                                         ", not a multiple of the device's minStorageBufferOffsetAlignment (",
                                         limits.minStorageBufferOffsetAlignment, ")"));
    // Bind from the offset to the end of the buffer. An empty tensor may sit
    // at the very end, where Vulkan allows no binding: it reads nothing, so
    // bind the buffer's start instead. A range beyond maxStorageBufferRange
    // (big constant buffers) is cut to what the device can address.
    VkDescriptorBufferInfo& d = infos[j];
    d.buffer = b->buffer_;
    d.offset = bytes == 0 && arg.offset >= b->vk_size_ ? 0 : arg.offset;
    d.range = VK_WHOLE_SIZE;
    if (b->vk_size_ - d.offset > limits.maxStorageBufferRange) {
      if (static_cast<uint64_t>(bytes) > limits.maxStorageBufferRange)
        return InvalidArgumentError(StrCat("vulkan: kernel '", info.name, "' argument ", j, " has ", bytes,
                                           " bytes, more than the device's maxStorageBufferRange (",
                                           limits.maxStorageBufferRange, ")"));
      d.range = limits.maxStorageBufferRange & ~uint64_t{3};
    }
  }
  const uint32_t groups = static_cast<uint32_t>(
      std::min<int64_t>(workgroup_count, static_cast<int64_t>(limits.maxComputeWorkGroupCount[0])));

  std::lock_guard<std::mutex> lock(ctx_->mu);
  Context& c = *ctx_;
  KILN_ASSIGN_OR_RETURN(Context::Batch * batch, c.OpenLocked(static_cast<uint32_t>(args.size())));
  VkDescriptorSet set = VK_NULL_HANDLE;
  if (!args.empty()) {
    VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    alloc.descriptorPool = batch->pool;
    alloc.descriptorSetCount = 1;
    alloc.pSetLayouts = &k.set_layout;
    KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkAllocateDescriptorSets(c.device, &alloc, &set), "vkAllocateDescriptorSets"));
    --batch->sets_left;
    batch->descriptors_left -= static_cast<uint32_t>(args.size());
    std::vector<VkWriteDescriptorSet> writes(args.size());
    for (size_t j = 0; j < args.size(); ++j) {
      writes[j].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
      writes[j].dstSet = set;
      writes[j].dstBinding = static_cast<uint32_t>(j);
      writes[j].descriptorCount = 1;
      writes[j].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[j].pBufferInfo = &infos[j];
    }
    c.vk.vkUpdateDescriptorSets(c.device, static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);
  }
  c.Barrier(batch->cb);
  c.vk.vkCmdBindPipeline(batch->cb, VK_PIPELINE_BIND_POINT_COMPUTE, k.pipeline);
  if (set) c.vk.vkCmdBindDescriptorSets(batch->cb, VK_PIPELINE_BIND_POINT_COMPUTE, k.layout, 0, 1, &set, 0, nullptr);
  push.resize(k.push_constant_bytes / 4, 0);
  if (k.push_constant_bytes)
    c.vk.vkCmdPushConstants(batch->cb, k.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, k.push_constant_bytes, push.data());
  c.vk.vkCmdDispatch(batch->cb, groups, 1, 1);
  ++batch->commands;
  current_serial_ = batch->serial;
  for (const BufferBinding& arg : args) static_cast<const VulkanBuffer*>(arg.buffer)->last_use_ = batch->serial;
  if (batch->commands >= kMaxCommandsPerBatch) KILN_RETURN_IF_ERROR(c.SubmitLocked());
  return OkStatus();
}

// --- Creation --------------------------------------------------------------

bool HasExtension(const std::vector<VkExtensionProperties>& extensions, const char* name) {
  for (const VkExtensionProperties& e : extensions)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

std::string VersionString(uint32_t v) {
  return StrCat(VK_API_VERSION_MAJOR(v), ".", VK_API_VERSION_MINOR(v), ".", VK_API_VERSION_PATCH(v));
}

/// Creates the instance, checking for a usable loader version.
Status CreateInstance(Context& c) {
  uint32_t loader_version = VK_API_VERSION_1_0;
  if (c.vk.vkEnumerateInstanceVersion) c.vk.vkEnumerateInstanceVersion(&loader_version);
  if (loader_version < VK_API_VERSION_1_1)
    return UnavailableError(StrCat("vulkan: the Vulkan loader supports Vulkan ", VersionString(loader_version),
                                   "; 1.1 or newer is required"));
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "kiln";
  app.pEngineName = "kiln";
  app.apiVersion = std::min<uint32_t>(VK_MAKE_API_VERSION(0, VK_API_VERSION_MAJOR(loader_version),
                                                          VK_API_VERSION_MINOR(loader_version), 0),
                                      VK_API_VERSION_1_3);
  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &app;
  VkResult r = c.vk.vkCreateInstance(&info, nullptr, &c.instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
    c.instance = VK_NULL_HANDLE;
    return UnavailableError(
        "vulkan: no Vulkan device found (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER; install a Vulkan driver, "
        "e.g. mesa-vulkan-drivers)");
  }
  if (r != VK_SUCCESS) {
    c.instance = VK_NULL_HANDLE;
    return VkCheck(r, "vkCreateInstance");
  }
  return c.vk.LoadInstance(c.instance);
}

/// options.device_index, or the best device by type.
StatusOr<VkPhysicalDevice> SelectPhysicalDevice(Context& c, int device_index, int* chosen) {
  uint32_t count = 0;
  KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkEnumeratePhysicalDevices(c.instance, &count, nullptr), "vkEnumeratePhysicalDevices"));
  std::vector<VkPhysicalDevice> devices(count);
  if (count)
    KILN_RETURN_IF_ERROR(
        VkCheck(c.vk.vkEnumeratePhysicalDevices(c.instance, &count, devices.data()), "vkEnumeratePhysicalDevices"));
  devices.resize(count);
  if (devices.empty())
    return UnavailableError("vulkan: no Vulkan device found (install a Vulkan driver, e.g. mesa-vulkan-drivers)");
  std::vector<VkPhysicalDeviceProperties> props(devices.size());
  std::string listing;
  for (size_t i = 0; i < devices.size(); ++i) {
    c.vk.vkGetPhysicalDeviceProperties(devices[i], &props[i]);
    listing += StrCat(i ? ", " : "", i, " = ", props[i].deviceName);
  }
  if (device_index >= 0) {
    if (static_cast<size_t>(device_index) >= devices.size())
      return InvalidArgumentError(StrCat("vulkan: no device ", device_index, ": ", devices.size(),
                                         " Vulkan device(s) found (", listing, ")"));
    if (props[device_index].apiVersion < VK_API_VERSION_1_1)
      return FailedPreconditionError(StrCat("vulkan: device ", device_index, " (", props[device_index].deviceName,
                                            ") supports Vulkan ", VersionString(props[device_index].apiVersion),
                                            "; 1.1 or newer is required"));
    *chosen = device_index;
    return devices[device_index];
  }
  for (VkPhysicalDeviceType type : {VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU}) {
    for (size_t i = 0; i < devices.size(); ++i) {
      if (props[i].deviceType == type && props[i].apiVersion >= VK_API_VERSION_1_1) {
        *chosen = static_cast<int>(i);
        return devices[i];
      }
    }
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    if (props[i].apiVersion >= VK_API_VERSION_1_1) {
      *chosen = static_cast<int>(i);
      return devices[i];
    }
  }
  return FailedPreconditionError(
      StrCat("vulkan: no Vulkan 1.1 device found (", devices.size(), " older device(s): ", listing, ")"));
}

/// The VkDevice with one compute queue and the storage/arithmetic features
/// generated kernels may use, where the device has them.
Status CreateLogicalDevice(Context& c) {
  uint32_t family_count = 0;
  c.vk.vkGetPhysicalDeviceQueueFamilyProperties(c.physical, &family_count, nullptr);
  std::vector<VkQueueFamilyProperties> families(family_count);
  c.vk.vkGetPhysicalDeviceQueueFamilyProperties(c.physical, &family_count, families.data());
  bool found = false;
  for (uint32_t i = 0; i < family_count && !found; ++i) {
    if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && families[i].queueCount > 0) {
      c.queue_family = i;
      found = true;
    }
  }
  if (!found) return FailedPreconditionError(StrCat("vulkan: device '", c.props.deviceName, "' has no compute queue"));

  uint32_t ext_count = 0;
  KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkEnumerateDeviceExtensionProperties(c.physical, nullptr, &ext_count, nullptr),
                               "vkEnumerateDeviceExtensionProperties"));
  std::vector<VkExtensionProperties> available(ext_count);
  KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkEnumerateDeviceExtensionProperties(c.physical, nullptr, &ext_count, available.data()),
                               "vkEnumerateDeviceExtensionProperties"));
  available.resize(ext_count);
  std::vector<const char*> extensions;
  for (const char* name : {VK_KHR_8BIT_STORAGE_EXTENSION_NAME, VK_KHR_16BIT_STORAGE_EXTENSION_NAME,
                           VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME, VK_KHR_STORAGE_BUFFER_STORAGE_CLASS_EXTENSION_NAME})
    if (HasExtension(available, name)) extensions.push_back(name);

  // 8-bit storage and float16/int8 arithmetic are 1.2 core or extensions:
  // their feature structs may only be chained where one of the two holds.
  const bool core12 = c.props.apiVersion >= VK_API_VERSION_1_2;
  const bool has8 = core12 || HasExtension(available, VK_KHR_8BIT_STORAGE_EXTENSION_NAME);
  const bool has_f16i8 = core12 || HasExtension(available, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
  VkPhysicalDeviceShaderFloat16Int8Features f16i8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDevice8BitStorageFeatures s8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
  VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  features.pNext = &s16;
  void** tail = &s16.pNext;
  if (has8) {
    *tail = &s8;
    tail = &s8.pNext;
  }
  if (has_f16i8) {
    *tail = &f16i8;
    tail = &f16i8.pNext;
  }
  c.vk.vkGetPhysicalDeviceFeatures2(c.physical, &features);
  // Keep only what kernels may use (the supported ones stay set).
  VkPhysicalDeviceFeatures wanted{};
  wanted.shaderInt64 = features.features.shaderInt64;
  wanted.shaderFloat64 = features.features.shaderFloat64;
  wanted.shaderInt16 = features.features.shaderInt16;
  features.features = wanted;
  s16.storagePushConstant16 = VK_FALSE;
  s16.storageInputOutput16 = VK_FALSE;
  s8.storagePushConstant8 = VK_FALSE;

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = c.queue_family;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  VkDeviceCreateInfo info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  info.pNext = &features;
  info.queueCreateInfoCount = 1;
  info.pQueueCreateInfos = &queue_info;
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  VkResult r = c.vk.vkCreateDevice(c.physical, &info, nullptr, &c.device);
  if (r != VK_SUCCESS) {
    c.device = VK_NULL_HANDLE;
    return VkCheck(r, "vkCreateDevice");
  }
  KILN_RETURN_IF_ERROR(c.vk.LoadDevice(c.device));
  c.vk.vkGetDeviceQueue(c.device, c.queue_family, 0, &c.queue);
  return OkStatus();
}

/// Properties, memory, command pool and pipeline cache of the chosen device.
Status InitDeviceState(Context& c) {
  VkPhysicalDeviceIDProperties id{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  VkPhysicalDeviceMaintenance3Properties m3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  id.pNext = &m3;
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &id;
  c.vk.vkGetPhysicalDeviceProperties2(c.physical, &props2);
  c.props = props2.properties;
  std::memcpy(c.device_uuid, id.deviceUUID, VK_UUID_SIZE);
  if (m3.maxMemoryAllocationSize) c.max_allocation = m3.maxMemoryAllocationSize;
  c.vk.vkGetPhysicalDeviceMemoryProperties(c.physical, &c.memory);
  constexpr VkMemoryPropertyFlags kUnified =
      VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  c.host_visible_buffers = !EnvIsSet("KILN_VULKAN_FORCE_STAGING") && c.FindMemoryType(~0u, kUnified) >= 0;

  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = c.queue_family;
  KILN_RETURN_IF_ERROR(VkCheck(c.vk.vkCreateCommandPool(c.device, &pool_info, nullptr, &c.command_pool), "vkCreateCommandPool"));

  c.pipeline_cache_path = PipelineCachePath(std::span<const uint8_t, 16>(c.device_uuid, 16));
  c.pipeline_cache_loaded = ReadPipelineCache(c.pipeline_cache_path, c.props.vendorID, c.props.deviceID,
                                              std::span<const uint8_t, 16>(c.props.pipelineCacheUUID, 16));
  VkPipelineCacheCreateInfo cache_info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  cache_info.initialDataSize = c.pipeline_cache_loaded.size();
  cache_info.pInitialData = c.pipeline_cache_loaded.data();
  if (c.vk.vkCreatePipelineCache(c.device, &cache_info, nullptr, &c.pipeline_cache) != VK_SUCCESS) {
    // A cache the driver refuses is no reason to fail: start empty.
    c.pipeline_cache = VK_NULL_HANDLE;
    c.pipeline_cache_loaded.clear();
    cache_info.initialDataSize = 0;
    cache_info.pInitialData = nullptr;
    KILN_RETURN_IF_ERROR(
        VkCheck(c.vk.vkCreatePipelineCache(c.device, &cache_info, nullptr, &c.pipeline_cache), "vkCreatePipelineCache"));
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Device>> CreateVulkanDevice(const DeviceOptions& options) {
  KILN_ASSIGN_OR_RETURN(VulkanApi api, LoadVulkanLibrary());
  auto ctx = std::make_shared<Context>();
  ctx->vk = api;
  KILN_RETURN_IF_ERROR(CreateInstance(*ctx));
  int chosen = -1;
  KILN_ASSIGN_OR_RETURN(ctx->physical, SelectPhysicalDevice(*ctx, options.device_index, &chosen));
  ctx->vk.vkGetPhysicalDeviceProperties(ctx->physical, &ctx->props);
  KILN_RETURN_IF_ERROR(CreateLogicalDevice(*ctx));
  KILN_RETURN_IF_ERROR(InitDeviceState(*ctx));
  if (EnvIsSet("KILN_VULKAN_VERBOSE"))
    std::fprintf(stderr, "vulkan: device %d: %s (%s, Vulkan %s)%s\n", chosen, ctx->props.deviceName,
                 DeviceTypeName(ctx->props.deviceType), VersionString(ctx->props.apiVersion).c_str(),
                 ctx->host_visible_buffers ? ", host-visible buffers" : ", staging transfers");
  return std::unique_ptr<Device>(std::make_unique<VulkanDevice>(std::move(ctx)));
}

}  // namespace kiln::hal::vulkan
