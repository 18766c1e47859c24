#include "model/cpu/cpu_power_attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace sympow {
namespace {

// The ε of MODEL.md, added to the normaliser.
constexpr float kNormalizerEpsilon = 1e-6f;

inline float EvenPower(float x, int degree) {
  float squared = x * x;
  float result = squared;
  for (int k = 2; k < degree; k += 2) result *= squared;
  return result;
}

inline float Load(float value) { return value; }
inline float Load(uint16_t value) { return Bf16ToFloat(value); }
inline void Store(float* to, float value) { *to = value; }
inline void Store(uint16_t* to, float value) { *to = FloatToBf16(value); }

const float* RowPtr(const MatrixView& m, int64_t row) {
  return static_cast<const float*>(m.data) + row * m.cols;
}
float* MutableRowPtr(const MatrixView& m, int64_t row) {
  return static_cast<float*>(m.data) + row * m.cols;
}

}  // namespace

// Working memory of one chunk, sized for the largest chunk seen.
struct CpuPowerAttention::ChunkBuffers {
  std::vector<float> keys, values, queries;   // [c × d], [c × d], [G·c × d]
  std::vector<float> key_features;            // [c × D]
  std::vector<float> query_features;          // [G·c × D]
  std::vector<float> scores;                  // [G·c × c]
  std::vector<float> numerator, denominator;  // [G·c × d], [G·c]
  std::vector<float> cumulative_log_gate;     // [c], inside the chunk
  std::vector<float> decay_to_end;            // [c]

  void Reserve(int64_t c, int64_t group, int64_t d, int64_t D) {
    keys.resize(c * d);
    values.resize(c * d);
    queries.resize(group * c * d);
    key_features.resize(c * D);
    query_features.resize(group * c * D);
    scores.resize(group * c * c);
    numerator.resize(group * c * d);
    denominator.resize(group * c);
    cumulative_log_gate.resize(c);
    decay_to_end.resize(c);
  }
};

CpuPowerAttention::CpuPowerAttention(const ModelConfig& config)
    : layout_(StateLayout::ForConfig(config)),
      expansion_(static_cast<int>(config.head_dim), static_cast<int>(config.degree)),
      num_heads_(config.num_heads),
      group_(config.QueryHeadsPerKvHead()),
      head_dim_(config.head_dim),
      degree_(static_cast<int>(config.degree)),
      scale_(static_cast<float>(config.AttentionScale())),
      scale_pow_(static_cast<float>(std::pow(config.AttentionScale(), config.degree))) {}

void CpuPowerAttention::Run(const PowerAttentionArgs& args, std::span<std::byte* const> slot_data) {
  std::vector<const AttentionSegment*> decode_rows;
  std::vector<std::byte*> decode_states;
  for (size_t i = 0; i < args.segments.size(); ++i) {
    const AttentionSegment& segment = args.segments[i];
    if (segment.num_rows == 1) {
      decode_rows.push_back(&segment);
      decode_states.push_back(slot_data[i]);
    } else if (segment.num_rows > 1) {
      PrefillSegment(args, segment, slot_data[i]);
    }
  }
  if (!decode_rows.empty()) DecodeRows(args, decode_rows, decode_states);
}

void CpuPowerAttention::PrefillSegment(const PowerAttentionArgs& args,
                                       const AttentionSegment& segment, std::byte* state) {
  const int64_t D = layout_.expanded_dim;
  const int64_t head_elements = layout_.ElementsPerHead();
  const int64_t chunk = std::max<int64_t>(1, std::min(args.chunk_size, segment.num_rows));
  ChunkBuffers buffers;
  buffers.Reserve(chunk, group_, head_dim_, D);
  std::vector<float> widened;  // fp32 copy of a bf16 head state while it is being advanced
  for (int64_t h = 0; h < layout_.num_kv_heads; ++h) {
    const int64_t offset = layout_.HeadOffset(args.layer, h);
    float* S;
    if (layout_.dtype == StateDType::kFloat32) {
      S = reinterpret_cast<float*>(state) + offset;
    } else {
      const uint16_t* stored = reinterpret_cast<const uint16_t*>(state) + offset;
      widened.resize(head_elements);
      for (int64_t i = 0; i < head_elements; ++i) widened[i] = Bf16ToFloat(stored[i]);
      S = widened.data();
    }
    float* z = S + D * head_dim_;
    for (int64_t start = 0; start < segment.num_rows; start += chunk) {
      PrefillChunk(args, segment.first_row + start, std::min(chunk, segment.num_rows - start), h, S,
                   z, buffers);
    }
    if (layout_.dtype == StateDType::kBFloat16) {
      uint16_t* stored = reinterpret_cast<uint16_t*>(state) + offset;
      for (int64_t i = 0; i < head_elements; ++i) stored[i] = FloatToBf16(widened[i]);
    }
  }
}

void CpuPowerAttention::PrefillChunk(const PowerAttentionArgs& args, int64_t first_row, int64_t c,
                                     int64_t kv_head, float* S, float* z, ChunkBuffers& b) {
  const int64_t d = head_dim_;
  const int64_t D = layout_.expanded_dim;
  const int64_t M = group_ * c;  // query rows: every query head of the group, every token

  // Gather this head's keys, values and its group's queries; cumulative gates inside the chunk.
  float running = 0.0f;
  for (int64_t t = 0; t < c; ++t) {
    std::copy_n(RowPtr(args.k, first_row + t) + kv_head * d, d, &b.keys[t * d]);
    std::copy_n(RowPtr(args.v, first_row + t) + kv_head * d, d, &b.values[t * d]);
    for (int64_t g = 0; g < group_; ++g) {
      std::copy_n(RowPtr(args.q, first_row + t) + (kv_head * group_ + g) * d, d,
                  &b.queries[(g * c + t) * d]);
    }
    if (args.log_gate.data != nullptr) running += RowPtr(args.log_gate, first_row + t)[kv_head];
    b.cumulative_log_gate[t] = running;
  }
  const float* G = b.cumulative_log_gate.data();
  expansion_.ExpandRows(b.keys.data(), c, d, /*key_side=*/true, b.key_features.data());
  expansion_.ExpandRows(b.queries.data(), M, d, /*key_side=*/false, b.query_features.data());

  // State form: what the tokens before this chunk contribute, decayed to each query.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, d, D, 1.0f, b.query_features.data(), D,
              S, d, 0.0f, b.numerator.data(), d);
  cblas_sgemv(CblasRowMajor, CblasNoTrans, M, D, 1.0f, b.query_features.data(), D, z, 1, 0.0f,
              b.denominator.data(), 1);
  // Attention form inside the chunk: (s·q·k)^p with the gate mask exp(G_t − G_s), s ≤ t.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, c, d, 1.0f, b.queries.data(), d,
              b.keys.data(), d, 0.0f, b.scores.data(), c);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < M; ++r) {
    const int64_t t = r % c;
    const float carried = scale_pow_ * std::exp(G[t]);
    for (int64_t j = 0; j < d; ++j) b.numerator[r * d + j] *= carried;
    float row_sum = 0.0f;
    float* score = &b.scores[r * c];
    for (int64_t s = 0; s < c; ++s) {
      score[s] = s <= t ? EvenPower(scale_ * score[s], degree_) * std::exp(G[t] - G[s]) : 0.0f;
      row_sum += score[s];
    }
    b.denominator[r] = b.denominator[r] * carried + row_sum;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, d, c, 1.0f, b.scores.data(), c,
              b.values.data(), d, 1.0f, b.numerator.data(), d);
  for (int64_t r = 0; r < M; ++r) {
    const int64_t g = r / c;
    const int64_t t = r % c;
    float* out = MutableRowPtr(args.out, first_row + t) + (kv_head * group_ + g) * d;
    const float inverse = 1.0f / (b.denominator[r] + kNormalizerEpsilon);
    for (int64_t j = 0; j < d; ++j) out[j] = b.numerator[r * d + j] * inverse;
  }

  // Carry the state past the chunk: decay it, add the chunk's keys decayed to the chunk's end.
  const float end_decay = std::exp(G[c - 1]);
  for (int64_t s = 0; s < c; ++s) {
    b.decay_to_end[s] = std::exp(G[c - 1] - G[s]);
    for (int64_t j = 0; j < d; ++j) b.values[s * d + j] *= b.decay_to_end[s];
  }
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, d, c, 1.0f, b.key_features.data(), D,
              b.values.data(), d, end_decay, S, d);
  cblas_sgemv(CblasRowMajor, CblasTrans, c, D, 1.0f, b.key_features.data(), D,
              b.decay_to_end.data(), 1, end_decay, z, 1);
}

void CpuPowerAttention::DecodeRows(const PowerAttentionArgs& args,
                                   std::span<const AttentionSegment* const> rows,
                                   std::span<std::byte* const> states) {
  const int64_t D = layout_.expanded_dim;
  const int64_t kv_heads = layout_.num_kv_heads;
  const int64_t scratch_floats =
      expansion_.scratch_size() + D * (1 + group_) + group_ * head_dim_ * 2 + group_;
  const int64_t tasks = static_cast<int64_t>(rows.size()) * kv_heads;
#pragma omp parallel
  {
    std::vector<float> scratch(scratch_floats);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t i = task / kv_heads;
      const int64_t h = task % kv_heads;
      const int64_t offset = layout_.HeadOffset(args.layer, h);
      if (layout_.dtype == StateDType::kFloat32) {
        float* S = reinterpret_cast<float*>(states[i]) + offset;
        DecodeHead(args, rows[i]->first_row, h, S, S + D * head_dim_, scratch.data());
      } else {
        uint16_t* S = reinterpret_cast<uint16_t*>(states[i]) + offset;
        DecodeHead(args, rows[i]->first_row, h, S, S + D * head_dim_, scratch.data());
      }
    }
  }
}

template <typename Storage>
void CpuPowerAttention::DecodeHead(const PowerAttentionArgs& args, int64_t row, int64_t kv_head,
                                   Storage* S, Storage* z, float* scratch) {
  const int64_t d = head_dim_;
  const int64_t D = layout_.expanded_dim;
  float* key_features = scratch;
  float* query_features = key_features + D;        // [G × D]
  float* numerator = query_features + group_ * D;  // [G × d]
  float* old_row = numerator + group_ * d;         // [d]
  float* denominator = old_row + d;                // [G]
  float* expansion_scratch = denominator + group_;
  const float* k = RowPtr(args.k, row) + kv_head * d;
  const float* v = RowPtr(args.v, row) + kv_head * d;
  expansion_.Expand(k, /*key_side=*/true, expansion_scratch, key_features);
  for (int64_t g = 0; g < group_; ++g) {
    expansion_.Expand(RowPtr(args.q, row) + (kv_head * group_ + g) * d, /*key_side=*/false,
                      expansion_scratch, query_features + g * D);
  }
  const float gate =
      args.log_gate.data != nullptr ? std::exp(RowPtr(args.log_gate, row)[kv_head]) : 1.0f;
  std::fill_n(numerator, group_ * d, 0.0f);
  std::fill_n(denominator, group_, 0.0f);
  // One pass over the state: read each row of S and z for every query head, then advance it.
  // The reads see the state before this token; the token's own weight (s·q·k)^p is added below
  // in the attention form, exact where the expanded form would cancel (p = 4, small q·k).
  for (int64_t i = 0; i < D; ++i) {
    Storage* s_row = S + i * d;
    for (int64_t j = 0; j < d; ++j) old_row[j] = Load(s_row[j]);
    const float old_z = Load(z[i]);
    for (int64_t g = 0; g < group_; ++g) {
      const float query_feature = query_features[g * D + i];
      float* num = numerator + g * d;
      for (int64_t j = 0; j < d; ++j) num[j] += query_feature * old_row[j];
      denominator[g] += query_feature * old_z;
    }
    const float feature = key_features[i];
    for (int64_t j = 0; j < d; ++j) Store(&s_row[j], gate * old_row[j] + feature * v[j]);
    Store(&z[i], gate * old_z + feature);
  }
  const float carried = gate * scale_pow_;
  for (int64_t g = 0; g < group_; ++g) {
    const float* q = RowPtr(args.q, row) + (kv_head * group_ + g) * d;
    float dot = 0.0f;
    for (int64_t j = 0; j < d; ++j) dot += q[j] * k[j];
    const float self_weight = EvenPower(scale_ * dot, degree_);
    float* out = MutableRowPtr(args.out, row) + (kv_head * group_ + g) * d;
    const float inverse = 1.0f / (carried * denominator[g] + self_weight + kNormalizerEpsilon);
    for (int64_t j = 0; j < d; ++j)
      out[j] = (carried * numerator[g * d + j] + self_weight * v[j]) * inverse;
  }
}

}  // namespace sympow
