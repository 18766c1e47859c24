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

// Runs advance(S, z) on one layer's kv head of `state` in fp32: a bf16 state is widened into
// `widened` and rounded back once, after.
template <typename Advance>
void AdvanceInFp32(const StateLayout& layout, std::byte* state, int64_t layer, int64_t kv_head,
                   std::vector<float>& widened, Advance advance) {
  const int64_t offset = layout.HeadOffset(layer, kv_head);
  const int64_t z_offset = layout.expanded_dim * layout.head_dim;
  if (layout.dtype == StateDType::kFloat32) {
    float* S = reinterpret_cast<float*>(state) + offset;
    advance(S, S + z_offset);
    return;
  }
  uint16_t* stored = reinterpret_cast<uint16_t*>(state) + offset;
  widened.resize(layout.ElementsPerHead());
  for (size_t e = 0; e < widened.size(); ++e) widened[e] = Bf16ToFloat(stored[e]);
  advance(widened.data(), widened.data() + z_offset);
  for (size_t e = 0; e < widened.size(); ++e) stored[e] = FloatToBf16(widened[e]);
}

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

  // Grows only: room for chunks of up to c tokens.
  void Reserve(int64_t c, int64_t group, int64_t d, int64_t D) {
    auto grow = [](std::vector<float>& v, int64_t n) {
      if (static_cast<int64_t>(v.size()) < n) v.resize(n);
    };
    grow(keys, c * d);
    grow(values, c * d);
    grow(queries, group * c * d);
    grow(key_features, c * D);
    grow(query_features, group * c * D);
    grow(scores, group * c * c);
    grow(numerator, group * c * d);
    grow(denominator, group * c);
    grow(cumulative_log_gate, c);
    grow(decay_to_end, c);
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
  const int64_t chunk = std::max<int64_t>(1, std::min(args.chunk_size, segment.num_rows));
  ChunkBuffers buffers;
  buffers.Reserve(chunk, group_, head_dim_, layout_.expanded_dim);
  std::vector<float> widened;  // fp32 copy of a bf16 head state while it is being advanced
  for (int64_t h = 0; h < layout_.num_kv_heads; ++h) {
    AdvanceInFp32(layout_, state, args.layer, h, widened, [&](float* S, float* z) {
      for (int64_t start = 0; start < segment.num_rows; start += chunk) {
        PrefillChunk(args, segment.first_row + start, std::min(chunk, segment.num_rows - start), h,
                     S, z, buffers);
      }
    });
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

  CarryPast(b.key_features.data(), b.values.data(), G, c, S, z, b);
}

void CpuPowerAttention::CarryPast(const float* key_features, float* values, const float* G,
                                  int64_t n, float* S, float* z, ChunkBuffers& b) const {
  const int64_t d = head_dim_;
  const int64_t D = layout_.expanded_dim;
  const float end_decay = std::exp(G[n - 1]);
  for (int64_t s = 0; s < n; ++s) {
    b.decay_to_end[s] = std::exp(G[n - 1] - G[s]);
    for (int64_t j = 0; j < d; ++j) values[s * d + j] *= b.decay_to_end[s];
  }
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, d, n, 1.0f, key_features, D, values, d,
              end_decay, S, d);
  cblas_sgemv(CblasRowMajor, CblasTrans, n, D, 1.0f, key_features, D, b.decay_to_end.data(), 1,
              end_decay, z, 1);
}

void CpuPowerAttention::FoldBuffer(const DecodeBufferView& buffer, float* S, float* z,
                                   ChunkBuffers& b) const {
  const int64_t n = buffer.count();
  if (n == 0) return;
  b.Reserve(n, group_, head_dim_, layout_.expanded_dim);
  float running = 0.0f;
  for (int64_t s = 0; s < n; ++s) {
    running += buffer.log_gates()[s];
    b.cumulative_log_gate[s] = running;
  }
  expansion_.ExpandRows(buffer.key(0), n, head_dim_, /*key_side=*/true, b.key_features.data());
  // The buffer's values are scaled in place: it is empty afterwards.
  CarryPast(b.key_features.data(), buffer.value(0), b.cumulative_log_gate.data(), n, S, z, b);
  buffer.set_count(0);
}

void CpuPowerAttention::DecodeRows(const PowerAttentionArgs& args,
                                   std::span<const AttentionSegment* const> rows,
                                   std::span<std::byte* const> states) {
  const int64_t D = layout_.expanded_dim;
  const int64_t kv_heads = layout_.num_kv_heads;
  const int64_t scratch_floats = expansion_.scratch_size() + group_ * D + group_ * head_dim_ * 2 +
                                 group_ + layout_.buffer_tokens;
  const int64_t tasks = static_cast<int64_t>(rows.size()) * kv_heads;
#pragma omp parallel
  {
    std::vector<float> scratch(scratch_floats);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t i = task / kv_heads;
      const int64_t h = task % kv_heads;
      const int64_t offset = layout_.HeadOffset(args.layer, h);
      const DecodeBufferView buffer(layout_, states[i], args.layer, h);
      if (layout_.dtype == StateDType::kFloat32) {
        const float* S = reinterpret_cast<const float*>(states[i]) + offset;
        DecodeHead(args, rows[i]->first_row, h, S, S + D * head_dim_, buffer, scratch.data());
      } else {
        const uint16_t* S = reinterpret_cast<const uint16_t*>(states[i]) + offset;
        DecodeHead(args, rows[i]->first_row, h, S, S + D * head_dim_, buffer, scratch.data());
      }
    }
  }
}

void CpuPowerAttention::FoldDecodeBuffers(std::byte* state) const {
  ChunkBuffers buffers;
  std::vector<float> widened;  // a bf16 head state while its buffer is folded (rounded once)
  for (int64_t layer = 0; layer < layout_.num_layers; ++layer) {
    for (int64_t h = 0; h < layout_.num_kv_heads; ++h) {
      const DecodeBufferView buffer(layout_, state, layer, h);
      AdvanceInFp32(layout_, state, layer, h, widened,
                    [&](float* S, float* z) { FoldBuffer(buffer, S, z, buffers); });
    }
  }
}

template <typename Storage>
void CpuPowerAttention::DecodeHead(const PowerAttentionArgs& args, int64_t row, int64_t kv_head,
                                   const Storage* S, const Storage* z,
                                   const DecodeBufferView& buffer, float* scratch) {
  const int64_t d = head_dim_;
  const int64_t D = layout_.expanded_dim;
  float* query_features = scratch;                 // [G × D]
  float* numerator = query_features + group_ * D;  // [G × d]
  float* old_row = numerator + group_ * d;         // [d]
  float* denominator = old_row + d;                // [G]
  float* decay = denominator + group_;             // [N]: each buffered token's, to now
  float* expansion_scratch = decay + layout_.buffer_tokens;
  // This token joins the buffer.
  const int64_t n = buffer.count() + 1;
  std::copy_n(RowPtr(args.k, row) + kv_head * d, d, buffer.key(n - 1));
  std::copy_n(RowPtr(args.v, row) + kv_head * d, d, buffer.value(n - 1));
  buffer.log_gates()[n - 1] =
      args.log_gate.data != nullptr ? RowPtr(args.log_gate, row)[kv_head] : 0.0f;
  buffer.set_count(n);
  float later_log_gates = 0.0f;  // Σ of the log gates after token s
  for (int64_t s = n - 1; s >= 0; --s) {
    decay[s] = std::exp(later_log_gates);
    later_log_gates += buffer.log_gates()[s];
  }
  const float state_decay = std::exp(later_log_gates);  // of S and z, folded before the buffer
  for (int64_t g = 0; g < group_; ++g) {
    expansion_.Expand(RowPtr(args.q, row) + (kv_head * group_ + g) * d, /*key_side=*/false,
                      expansion_scratch, query_features + g * D);
  }
  std::fill_n(numerator, group_ * d, 0.0f);
  std::fill_n(denominator, group_, 0.0f);
  // State form: one read of S and z for every query head of the group.
  for (int64_t i = 0; i < D; ++i) {
    const Storage* s_row = S + i * d;
    for (int64_t j = 0; j < d; ++j) old_row[j] = Load(s_row[j]);
    const float old_z = Load(z[i]);
    for (int64_t g = 0; g < group_; ++g) {
      const float query_feature = query_features[g * D + i];
      float* num = numerator + g * d;
      for (int64_t j = 0; j < d; ++j) num[j] += query_feature * old_row[j];
      denominator[g] += query_feature * old_z;
    }
  }
  // Attention form over the buffer, this token included: (s·q·k)^p, decayed.
  const float carried = state_decay * scale_pow_;
  for (int64_t g = 0; g < group_; ++g) {
    const float* q = RowPtr(args.q, row) + (kv_head * group_ + g) * d;
    float* num = numerator + g * d;
    float den = carried * denominator[g];
    for (int64_t j = 0; j < d; ++j) num[j] *= carried;
    for (int64_t s = 0; s < n; ++s) {
      const float* key = buffer.key(s);
      float dot = 0.0f;
      for (int64_t j = 0; j < d; ++j) dot += q[j] * key[j];
      const float weight = EvenPower(scale_ * dot, degree_) * decay[s];
      const float* value = buffer.value(s);
      for (int64_t j = 0; j < d; ++j) num[j] += weight * value[j];
      den += weight;
    }
    float* out = MutableRowPtr(args.out, row) + (kv_head * group_ + g) * d;
    const float inverse = 1.0f / (den + kNormalizerEpsilon);
    for (int64_t j = 0; j < d; ++j) out[j] = num[j] * inverse;
  }
}

}  // namespace sympow
