// A model's weights uploaded into a backend's memory, in the shapes the forward pass uses.
#pragma once

#include <vector>

#include "model/backend.h"
#include "model/weights.h"

namespace sympow {

// Projections that read the same input are stacked into one matrix (their rows one after the
// other), so that one GEMM computes them all; a stack's bias is empty when none of its parts has
// one, and zeros stand in for the parts without.
struct DeviceLayerWeights {
  Matrix input_norm, input_norm_bias;
  // q, k, v and (with gating) the gate's projections, zero rows padding the outputs to a
  // multiple of 64 (device_weights.cc says why); then each of them alone, a view of its rows
  // (and of its bias's columns; empty where it has none)
  Matrix attention_in, attention_in_bias;
  Matrix q_proj, q_proj_bias, k_proj, k_proj_bias, v_proj, v_proj_bias, g_proj, g_proj_bias;
  Matrix q_norm, k_norm;
  Matrix o_proj, o_proj_bias;
  Matrix post_norm, post_norm_bias;
  Matrix mlp_in, mlp_in_bias;  // SwiGLU: the gate's and the up projections; GELU: the input's
  Matrix mlp_out, mlp_out_bias;
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
