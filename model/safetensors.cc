#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace sympow {
namespace {

using nlohmann::json;

// A header larger than this is not a model header (the format's own reader uses the same cap).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

absl::Status Invalid(const std::string& path, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", problem));
}

// Parses one tensor entry of the header; offsets are relative to the data section.
absl::StatusOr<TensorView> ParseEntry(const std::string& path, const std::string& name,
                                      const json& entry, const std::byte* data, uint64_t data_size,
                                      uint64_t* begin_out) {
  auto bad = [&](absl::string_view problem) {
    return Invalid(path, absl::StrCat("tensor '", name, "': ", problem));
  };
  if (!entry.is_object()) return bad("entry must be an object");
  if (!entry.contains("dtype") || !entry["dtype"].is_string()) return bad("missing string 'dtype'");
  const std::string dtype_name = entry["dtype"].get<std::string>();
  std::optional<DType> dtype = ParseSafetensorsDType(dtype_name);
  if (!dtype) return bad(absl::StrCat("unsupported dtype '", dtype_name, "' (F32, BF16, F16 are)"));
  if (!entry.contains("shape") || !entry["shape"].is_array()) return bad("missing array 'shape'");
  TensorView view;
  view.name = name;
  view.dtype = *dtype;
  view.file = path;
  uint64_t elements = 1;
  for (const json& dim : entry["shape"]) {
    if (!dim.is_number_unsigned())
      return bad(absl::StrCat("shape entry ", dim.dump(), " is not a non-negative integer"));
    const uint64_t extent = dim.get<uint64_t>();
    if (extent != 0 && elements > (uint64_t{1} << 62) / extent) return bad("shape overflows");
    elements *= extent;
    view.shape.push_back(static_cast<int64_t>(extent));
  }
  const json& offsets = entry.contains("data_offsets") ? entry["data_offsets"] : json();
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return bad("'data_offsets' must be [begin, end] with non-negative integers");
  }
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  if (begin > end) return bad(absl::StrCat("data_offsets [", begin, ", ", end, "] are reversed"));
  if (end > data_size) {
    return bad(absl::StrCat("data_offsets end ", end, " lies outside the data section (", data_size,
                            " bytes)"));
  }
  const uint64_t expected = elements * DTypeSize(*dtype);
  if (end - begin != expected) {
    return bad(absl::StrCat("shape ", entry["shape"].dump(), " of ", dtype_name, " needs ",
                            expected, " bytes but data_offsets span ", end - begin));
  }
  view.data = data + begin;
  view.byte_size = end - begin;
  *begin_out = begin;
  return view;
}

}  // namespace

int64_t TensorView::NumElements() const {
  int64_t n = 1;
  for (int64_t extent : shape) n *= extent;
  return n;
}

std::string TensorView::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::vector<float> TensorView::ToFloat() const {
  std::vector<float> values(NumElements());
  ConvertToFloat(dtype, data, values.size(), values.data());
  return values;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return Invalid(path, "not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);
  if (file_size < 8) {
    ::close(fd);
    return Invalid(path, absl::StrCat("file of ", file_size, " bytes is too short for a header"));
  }
  void* mapping = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED)
    return Invalid(path, absl::StrCat("mmap failed: ", std::strerror(errno)));

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = mapping;
  file->mapping_size_ = file_size;
  const auto* bytes = static_cast<const std::byte*>(mapping);

  uint64_t header_size;
  std::memcpy(&header_size, bytes, sizeof header_size);  // little-endian, like every target
  if (header_size > kMaxHeaderBytes || header_size > file_size - 8) {
    return Invalid(path, absl::StrCat("header length ", header_size, " exceeds the file (",
                                      file_size, " bytes)"));
  }
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  if (header_size == 0 || header_text[0] != '{')
    return Invalid(path, "header is not a JSON object");
  json header = json::parse(header_text, header_text + header_size, nullptr, false);
  if (header.is_discarded() || !header.is_object())
    return Invalid(path, "header is not valid JSON");

  const std::byte* data = bytes + 8 + header_size;
  const uint64_t data_size = file_size - 8 - header_size;
  std::vector<std::pair<uint64_t, const TensorView*>> by_offset;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Invalid(path, "__metadata__ must be an object");
      for (auto& [key, value] : entry.items()) {
        if (!value.is_string())
          return Invalid(path, absl::StrCat("__metadata__ '", key, "' must be a string"));
        file->metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    uint64_t begin = 0;
    absl::StatusOr<TensorView> view = ParseEntry(path, name, entry, data, data_size, &begin);
    if (!view.ok()) return view.status();
    auto [it, inserted] = file->tensors_.emplace(name, std::move(*view));
    by_offset.emplace_back(begin, &it->second);
  }
  // The data section must be covered exactly: sorted by offset, each tensor starts where the
  // previous one ended, and the last ends at the end of the file.
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return a.first < b.first || (a.first == b.first && a.second->byte_size < b.second->byte_size);
  });
  uint64_t covered = 0;
  const TensorView* previous = nullptr;
  for (const auto& [begin, view] : by_offset) {
    if (begin < covered) {
      return Invalid(path,
                     absl::StrCat("tensors '", previous->name, "' and '", view->name, "' overlap"));
    }
    if (begin > covered) {
      return Invalid(path, absl::StrCat("unused bytes [", covered, ", ", begin, ") before tensor '",
                                        view->name, "'"));
    }
    covered = begin + view->byte_size;
    previous = view;
  }
  if (covered != data_size) {
    return Invalid(path,
                   absl::StrCat(data_size - covered, " trailing bytes after the last tensor"));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

}  // namespace sympow
