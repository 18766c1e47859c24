// Test support: temporary directories and small model files written for real on disk.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"

namespace sympow::testing {

// A fresh directory under the test's temp dir, removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& bytes);
std::string ReadFile(const std::string& path);

// A small valid config (2 layers, 2 heads × 16, degree 2, gating and qk-norm on).
ModelConfig SmallConfig();

}  // namespace sympow::testing
