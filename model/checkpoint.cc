#include "model/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace sympow {
namespace {

namespace fs = std::filesystem;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

// Reads the index's weight_map: tensor name → shard file name (inside the model directory).
absl::StatusOr<std::map<std::string, std::string>> ReadWeightMap(const std::string& index_path) {
  std::ifstream in(index_path);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json index = nlohmann::json::parse(text.str(), nullptr, false);
  if (index.is_discarded() || !index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a JSON object"));
  }
  if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": missing object 'weight_map'"));
  }
  std::map<std::string, std::string> weight_map;
  for (auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map['", tensor, "'] must be a file name"));
    }
    const std::string shard_name = shard.get<std::string>();
    if (shard_name.empty() || shard_name.find('/') != std::string::npos || shard_name == "..") {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map['", tensor,
                                                     "'] names '", shard_name,
                                                     "', not a file in the model directory"));
    }
    weight_map[tensor] = shard_name;
  }
  return weight_map;
}

}  // namespace

const TensorView* Checkpoint::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::string& dir) {
  Checkpoint checkpoint;
  const fs::path index_path = fs::path(dir) / kIndexFile;
  if (!fs::exists(index_path)) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open((fs::path(dir) / kSingleFile).string());
    if (!file.ok()) return file.status();
    for (const auto& [name, view] : (*file)->tensors()) checkpoint.tensors_[name] = &view;
    checkpoint.files_.push_back(std::move(*file));
    return checkpoint;
  }
  absl::StatusOr<std::map<std::string, std::string>> weight_map =
      ReadWeightMap(index_path.string());
  if (!weight_map.ok()) return weight_map.status();
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : *weight_map) shard_names.insert(shard);
  for (const std::string& shard : shard_names) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open((fs::path(dir) / shard).string());
    if (!file.ok()) return file.status();
    for (const auto& [name, view] : (*file)->tensors()) {
      auto listed = weight_map->find(name);
      if (listed == weight_map->end() || listed->second != shard) {
        return absl::InvalidArgumentError(absl::StrCat(
            (*file)->path(), ": tensor '", name, "' is not listed for this shard in ", kIndexFile));
      }
      checkpoint.tensors_[name] = &view;
    }
    checkpoint.files_.push_back(std::move(*file));
  }
  for (const auto& [tensor, shard] : *weight_map) {
    if (!checkpoint.tensors_.contains(tensor)) {
      return absl::InvalidArgumentError(absl::StrCat(index_path.string(), ": tensor '", tensor,
                                                     "' is missing from shard '", shard, "'"));
    }
  }
  return checkpoint;
}

}  // namespace sympow
