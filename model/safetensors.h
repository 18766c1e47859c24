// Reads .safetensors files: mmaps the file and validates its header before exposing tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/dtype.h"

namespace sympow {

// A tensor inside a mapped file. `data` stays valid while its file is open.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t byte_size = 0;
  std::string file;  // where it came from, for messages

  int64_t NumElements() const;
  std::string ShapeString() const;
  // Converts the tensor to fp32, whatever its stored dtype.
  std::vector<float> ToFloat() const;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`: header JSON, dtypes (F32, BF16, F16), shapes against byte sizes,
  // offsets inside the data, no overlaps, no holes and no trailing bytes.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace sympow
