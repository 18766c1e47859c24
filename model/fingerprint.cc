#include "model/fingerprint.h"

#include <zlib.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace sympow {

std::string ModelFingerprint(const LoadedModel& model) {
  constexpr size_t kSampleBytes = 4096;
  uLong crc = crc32(0L, Z_NULL, 0);
  uLong adler = adler32(0L, Z_NULL, 0);
  auto add = [&](const void* data, size_t size) {
    crc = crc32(crc, static_cast<const Bytef*>(data), static_cast<uInt>(size));
    adler = adler32(adler, static_cast<const Bytef*>(data), static_cast<uInt>(size));
  };
  const std::string config = ModelConfigToJson(model.config);
  add(config.data(), config.size());
  for (const auto& [name, view] : model.checkpoint.tensors()) {  // std::map: a fixed order
    const std::string header =
        absl::StrCat(name, ":", DTypeName(view->dtype), ":", absl::StrJoin(view->shape, ","));
    add(header.data(), header.size());
    const size_t head = std::min(kSampleBytes, view->byte_size);
    add(view->data, head);
    add(view->data + view->byte_size - head, head);
  }
  return absl::StrFormat("%08x%08x", static_cast<uint32_t>(crc), static_cast<uint32_t>(adler));
}

}  // namespace sympow
