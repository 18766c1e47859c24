#include "model/state_layout.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "model/expansion.h"

namespace sympow {

StateLayout StateLayout::ForConfig(const ModelConfig& config) {
  StateLayout layout;
  layout.num_layers = config.num_layers;
  layout.num_kv_heads = config.num_kv_heads;
  // ParseModelConfig has already checked that the expansion fits.
  layout.expanded_dim = ExpandedDim(config.head_dim, config.degree).value();
  layout.head_dim = config.head_dim;
  layout.buffer_tokens = config.decode_buffer_tokens;
  layout.dtype = config.state_dtype;
  return layout;
}

absl::StatusOr<int64_t> BufferedTokens(const StateLayout& layout,
                                       std::span<const std::byte> state) {
  if (static_cast<int64_t>(state.size()) != layout.Bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("a state of ", state.size(),
                                                   " bytes does not fit this model's ",
                                                   layout.Bytes()));
  }
  int64_t tokens = -1;
  for (int64_t layer = 0; layer < layout.num_layers; ++layer) {
    for (int64_t h = 0; h < layout.num_kv_heads; ++h) {
      float count;
      std::memcpy(&count, state.data() + layout.BufferOffset(layer, h), sizeof count);
      const bool whole = count >= 0 && count < static_cast<float>(layout.buffer_tokens) &&
                         count == static_cast<float>(static_cast<int64_t>(count));
      if (!whole || (tokens >= 0 && static_cast<int64_t>(count) != tokens)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the state's decode buffer of layer ", layer, ", kv head ", h, " holds ", count,
            " tokens; expected a whole number below ", layout.buffer_tokens,
            tokens >= 0 ? absl::StrCat(", the same as the others (", tokens, ")") : ""));
      }
      tokens = static_cast<int64_t>(count);
    }
  }
  return tokens;
}

}  // namespace sympow
