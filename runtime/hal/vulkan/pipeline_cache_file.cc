//===- pipeline_cache_file.cc - Where the VkPipelineCache lives on disk ----===//
#include "runtime/hal/vulkan/pipeline_cache_file.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace kiln::hal::vulkan {
namespace {

/// Refuse to read cache files beyond this (not a pipeline cache).
constexpr std::uintmax_t kMaxCacheBytes = std::uintmax_t{1} << 30;

uint32_t ReadU32(const std::vector<uint8_t>& bytes, size_t at) {
  uint32_t v;
  std::memcpy(&v, bytes.data() + at, 4);
  return v;
}

}  // namespace

std::string PipelineCachePath(std::span<const uint8_t, 16> device_uuid) {
  std::string dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    dir = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home)
    dir = std::string(home) + "/.cache";
  else
    return "";
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : device_uuid) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  return dir + "/kiln/vulkan-pipeline-cache-" + hex + ".bin";
}

std::vector<uint8_t> ReadPipelineCache(const std::string& path, uint32_t vendor_id, uint32_t device_id,
                                       std::span<const uint8_t, 16> pipeline_cache_uuid) {
  if (path.empty()) return {};
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec || size < 32 || size > kMaxCacheBytes) return {};
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes(size);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) return {};
  // VkPipelineCacheHeaderVersionOne: headerSize, headerVersion (1), vendorID,
  // deviceID, pipelineCacheUUID[16].
  const uint32_t header_size = ReadU32(bytes, 0);
  if (header_size < 32 || header_size > size || ReadU32(bytes, 4) != 1 || ReadU32(bytes, 8) != vendor_id ||
      ReadU32(bytes, 12) != device_id || std::memcmp(bytes.data() + 16, pipeline_cache_uuid.data(), 16) != 0)
    return {};
  return bytes;
}

bool WritePipelineCache(const std::string& path, std::span<const uint8_t> data) {
  if (path.empty() || data.empty()) return false;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return false;
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) {
    std::remove(tmp.c_str());
    return false;
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace kiln::hal::vulkan
