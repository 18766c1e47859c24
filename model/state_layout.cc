#include "model/state_layout.h"

#include "model/expansion.h"

namespace sympow {

StateLayout StateLayout::ForConfig(const ModelConfig& config) {
  StateLayout layout;
  layout.num_layers = config.num_layers;
  layout.num_kv_heads = config.num_kv_heads;
  // ParseModelConfig has already checked that the expansion fits.
  layout.expanded_dim = ExpandedDim(config.head_dim, config.degree).value();
  layout.head_dim = config.head_dim;
  layout.dtype = config.state_dtype;
  return layout;
}

}  // namespace sympow
