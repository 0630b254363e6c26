//===- pipeline_cache_file.h - Where the VkPipelineCache lives on disk -----===//
//
// Compiling SPIR-V to device code is the slow part of loading an executable;
// the driver keeps a VkPipelineCache and persists it per device in
// $XDG_CACHE_HOME/kiln/ (else ~/.cache/kiln/). The cache is an optimization
// only: a missing, foreign or corrupt file is ignored, and an unwritable
// directory just means nothing is saved.
#ifndef KILN_RUNTIME_HAL_VULKAN_PIPELINE_CACHE_FILE_H_
#define KILN_RUNTIME_HAL_VULKAN_PIPELINE_CACHE_FILE_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kiln::hal::vulkan {

/// ".../kiln/vulkan-pipeline-cache-<hex of device_uuid>.bin", or "" when
/// neither XDG_CACHE_HOME nor HOME is set.
std::string PipelineCachePath(std::span<const uint8_t, 16> device_uuid);

/// The file's bytes when its header (VkPipelineCacheHeaderVersionOne) matches
/// this vendor, device and pipelineCacheUUID; empty otherwise.
std::vector<uint8_t> ReadPipelineCache(const std::string& path, uint32_t vendor_id, uint32_t device_id,
                                       std::span<const uint8_t, 16> pipeline_cache_uuid);

/// Writes `data` to `path` (creating the directory; through a temporary file
/// and a rename, so a reader never sees half a file). Returns false on any
/// failure; callers ignore it.
bool WritePipelineCache(const std::string& path, std::span<const uint8_t> data);

}  // namespace kiln::hal::vulkan

#endif  // KILN_RUNTIME_HAL_VULKAN_PIPELINE_CACHE_FILE_H_
