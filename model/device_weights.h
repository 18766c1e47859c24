// A model's weights uploaded into a backend's memory, in the shapes the forward pass uses.
#pragma once

#include <vector>

#include "model/backend.h"
#include "model/weights.h"

namespace sympow {

struct DeviceLayerWeights {
  Matrix input_norm, input_norm_bias;
  Matrix q_proj, q_proj_bias, k_proj, k_proj_bias, v_proj, v_proj_bias;
  Matrix g_proj, g_proj_bias;
  Matrix q_norm, k_norm;
  Matrix o_proj, o_proj_bias;
  Matrix post_norm, post_norm_bias;
  Matrix mlp_in, mlp_in_bias, mlp_up, mlp_up_bias, mlp_out, mlp_out_bias;
};

// Optional tensors stay empty Matrix objects.
struct DeviceWeights {
  Matrix embed;
  std::vector<DeviceLayerWeights> layers;
  Matrix final_norm, final_norm_bias;
  Matrix lm_head;  // shares the embedding's memory when tied
};

DeviceWeights UploadWeights(const ModelTensors& tensors, bool tied_embeddings, Backend& backend);

}  // namespace sympow
