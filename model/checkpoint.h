// A model directory's tensors: one model.safetensors or the shards of model.safetensors.index.json.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/safetensors.h"

namespace sympow {

class Checkpoint {
 public:
  // Opens `dir`/model.safetensors.index.json when present (every listed tensor must be in its
  // shard, and every shard tensor listed), else `dir`/model.safetensors.
  static absl::StatusOr<Checkpoint> Open(const std::string& dir);

  const std::map<std::string, const TensorView*>& tensors() const { return tensors_; }
  const TensorView* Find(const std::string& name) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> tensors_;
};

}  // namespace sympow
