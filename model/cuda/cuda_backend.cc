#include "model/cuda/cuda_backend.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/elementwise.h"
#include "kernels/power_prefill_mma.h"
#include "model/cuda/cuda_check.h"
#include "model/expansion.h"
#include "spdlog/spdlog.h"

namespace sympow {
namespace {

float* Floats(const MatrixView& m) { return static_cast<float*>(m.data); }
const float* Floats(const Matrix& m) { return static_cast<const float*>(m.view.data); }
const float* OptionalFloats(const Matrix* m) {
  return m != nullptr && !m->empty() ? Floats(*m) : nullptr;
}

// What the kernels cover; anything else is refused when the backend is made.
absl::Status CheckSupported(const ModelConfig& config, const StateLayout& layout) {
  const int64_t group = config.QueryHeadsPerKvHead();
  if (config.head_dim != 32 && config.head_dim != 64 && config.head_dim != 128) {
    return absl::UnimplementedError(absl::StrCat(
        "the CUDA backend's kernels are built for head_dim 32, 64 or 128, got ", config.head_dim));
  }
  if (config.degree > kernels::kMaxDegree) {
    return absl::UnimplementedError(absl::StrCat("the CUDA backend supports degree up to ",
                                                 kernels::kMaxDegree, ", got ", config.degree));
  }
  if (group > kernels::kMaxGroup) {
    return absl::UnimplementedError(absl::StrCat("the CUDA backend supports up to ",
                                                 kernels::kMaxGroup,
                                                 " query heads per kv head, got ", group));
  }
  if (config.vocab_size > kernels::MaxSampledVocab()) {
    return absl::UnimplementedError(absl::StrCat("the CUDA backend samples vocabularies up to ",
                                                 kernels::MaxSampledVocab(),
                                                 " tokens, got vocab_size ", config.vocab_size));
  }
  if (layout.expanded_dim % 8 != 0) {  // 16-byte state accesses
    return absl::UnimplementedError(absl::StrCat(
        "the CUDA backend needs an expanded dimension divisible by 8, got ", layout.expanded_dim));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const ModelConfig& config,
                                                                 int64_t max_state_slots) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();  // clear the sticky error of a machine without a GPU
    return absl::FailedPreconditionError("no CUDA device is available");
  }
  const StateLayout layout = StateLayout::ForConfig(config);
  if (absl::Status supported = CheckSupported(config, layout); !supported.ok()) return supported;
  std::unique_ptr<CudaBackend> backend(new CudaBackend(config, max_state_slots));
  // One slot more than asked for: the padding rows of recorded decode passes advance it.
  const size_t bytes = static_cast<size_t>(layout.Bytes()) * (max_state_slots + 1);
  if (cudaMalloc(&backend->slots_, bytes) != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrCat(
        max_state_slots, " state slots of ", layout.Bytes(), " bytes do not fit on the GPU"));
  }
  return backend;
}

CudaBackend::CudaBackend(const ModelConfig& config, int64_t max_state_slots)
    : layout_(StateLayout::ForConfig(config)), max_slots_(max_state_slots) {
  CudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  CublasCheck(cublasCreate(&cublas_), "cublasCreate");
  CublasCheck(cublasSetStream(cublas_, stream_), "cublasSetStream");
  // cuBLAS's own workspace, so that it allocates nothing while a graph is captured.
  constexpr int64_t kCublasWorkspaceBytes = 32 << 20;
  CublasCheck(cublasSetWorkspace(cublas_, cublas_workspace_.Reserve(kCublasWorkspaceBytes),
                                 kCublasWorkspaceBytes),
              "cublasSetWorkspace");

  const SymmetricExpansion expansion(static_cast<int>(config.head_dim),
                                     static_cast<int>(config.degree));
  std::vector<uint8_t> monomials;
  std::vector<float> key_weights;
  for (int64_t m = 0; m < expansion.dim(); ++m) {
    for (int factor : expansion.Monomial(m)) monomials.push_back(static_cast<uint8_t>(factor));
    key_weights.push_back(expansion.KeyWeight(m));
  }
  shape_.num_heads = static_cast<int>(config.num_heads);
  shape_.num_kv_heads = static_cast<int>(config.num_kv_heads);
  shape_.head_dim = static_cast<int>(config.head_dim);
  shape_.expanded_dim = static_cast<int>(expansion.dim());
  shape_.degree = static_cast<int>(config.degree);
  shape_.scale = static_cast<float>(config.AttentionScale());
  shape_.scale_pow = static_cast<float>(std::pow(config.AttentionScale(), config.degree));
  shape_.buffer_tokens = static_cast<int>(config.decode_buffer_tokens);
  shape_.bf16_states = layout_.dtype == StateDType::kBFloat16;
  shape_.monomials = monomials_.Upload(monomials, stream_);
  shape_.key_weights = key_weights_.Upload(key_weights, stream_);
  const std::vector<int32_t> feature_rows =
      kernels::FeatureRows(monomials, shape_.head_dim, shape_.degree);
  if (!feature_rows.empty()) shape_.feature_rows = feature_rows_.Upload(feature_rows, stream_);
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  for (auto& [key, recording] : recordings_) {
    if (recording.graph != nullptr) cudaGraphExecDestroy(recording.graph);
  }
  cudaFree(slots_);
  cublasDestroy(cublas_);
  cudaStreamDestroy(stream_);
}

int64_t CudaBackend::DeviceMemoryInUse() const {
  size_t free_bytes = 0, total_bytes = 0;
  CudaCheck(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return static_cast<int64_t>(total_bytes - free_bytes);
}

void CudaBackend::Synchronize() { CudaCheck(cudaStreamSynchronize(stream_), "synchronize"); }

Matrix CudaBackend::Allocate(int64_t rows, int64_t cols, DType dtype) {
  ++allocation_epoch_;  // the matrix may replace one that a recording uses
  const size_t bytes = std::max<int64_t>(1, rows * cols) * DTypeSize(dtype);
  void* data = nullptr;
  CudaCheck(cudaMalloc(&data, bytes), "cudaMalloc");
  CudaCheck(cudaMemsetAsync(data, 0, bytes, stream_), "cudaMemset");
  std::shared_ptr<void> storage(data, [](void* p) { cudaFree(p); });
  return Matrix{{data, dtype, rows, cols}, storage};
}

Matrix CudaBackend::Upload(const TensorView& tensor, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  std::vector<float> widened(n);
  ConvertToFloat(tensor.dtype, tensor.data, n, widened.data());
  Matrix matrix = Allocate(rows, cols);
  std::vector<uint16_t> bf16;
  const void* source = widened.data();
  size_t bytes = n * sizeof(float);
  if (tensor.shape.size() == 2) {  // matrices go to BF16; norms and biases (vectors) stay fp32
    bf16.resize(n);
    for (int64_t i = 0; i < n; ++i) bf16[i] = FloatToBf16(widened[i]);
    source = bf16.data();
    bytes = n * sizeof(uint16_t);
    matrix.view.dtype = DType::kBF16;
  }
  CudaCheck(cudaMemcpyAsync(matrix.view.data, source, bytes, cudaMemcpyHostToDevice, stream_),
            "upload");
  Synchronize();
  return matrix;
}

void CudaBackend::CopyToHost(MatrixView from, float* to) {
  CudaCheck(cudaMemcpyAsync(to, from.data, from.rows * from.cols * sizeof(float),
                            cudaMemcpyDeviceToHost, stream_),
            "copy to host");
  Synchronize();
}

void CudaBackend::CopyFromHost(const float* from, MatrixView to) {
  CudaCheck(cudaMemcpyAsync(to.data, from, to.rows * to.cols * sizeof(float),
                            cudaMemcpyHostToDevice, stream_),
            "copy from host");
  Synchronize();
}

std::byte* CudaBackend::SlotData(int32_t slot) const {
  return slots_ + static_cast<int64_t>(slot) * layout_.Bytes();
}

absl::StatusOr<int32_t> CudaBackend::AcquireStateSlot() {
  int32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else if (next_unused_slot_ < max_slots_) {
    slot = next_unused_slot_++;
  } else {
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", max_slots_, " GPU state slots are in use"));
  }
  CudaCheck(cudaMemsetAsync(SlotData(slot), 0, layout_.Bytes(), stream_), "zero state slot");
  return slot;
}

void CudaBackend::ReleaseStateSlot(int32_t slot) { free_slots_.push_back(slot); }

void CudaBackend::CopyStateSlot(int32_t from, int32_t to) {
  CudaCheck(cudaMemcpyAsync(SlotData(to), SlotData(from), layout_.Bytes(), cudaMemcpyDeviceToDevice,
                            stream_),
            "copy state slot");
}

void CudaBackend::ReadStateSlot(int32_t slot, std::span<std::byte> to) {
  CudaCheck(cudaMemcpyAsync(to.data(), SlotData(slot), std::min<size_t>(to.size(), layout_.Bytes()),
                            cudaMemcpyDeviceToHost, stream_),
            "read state slot");
  Synchronize();
}

HostBuffer CudaBackend::AllocateHostState() {
  void* pinned = nullptr;
  CudaCheck(cudaMallocHost(&pinned, layout_.Bytes()), "cudaMallocHost");
  return HostBuffer(static_cast<std::byte*>(pinned), [](std::byte* p) { cudaFreeHost(p); });
}

void CudaBackend::WriteStateSlot(int32_t slot, std::span<const std::byte> from) {
  CudaCheck(
      cudaMemcpyAsync(SlotData(slot), from.data(), std::min<size_t>(from.size(), layout_.Bytes()),
                      cudaMemcpyHostToDevice, stream_),
      "write state slot");
  Synchronize();
}

std::vector<kernels::DecodeRow> CudaBackend::DecodeRows(
    std::span<const AttentionSegment> segments) const {
  std::vector<kernels::DecodeRow> rows;
  for (const AttentionSegment& segment : segments) {
    if (segment.num_rows == 1) rows.push_back({segment.first_row, SlotData(segment.state_slot)});
  }
  return rows;
}

void CudaBackend::BeginBatch(const BatchInputs& inputs) {
  batch_inputs_.Upload(inputs, DecodeRows(inputs.segments), stream_);
}

MatrixView CudaBackend::RunRecorded(int64_t key, const std::function<MatrixView()>& operations) {
  Recording& recording = recordings_[key];
  if (recording.epoch == allocation_epoch_ && recording.graph != nullptr) {
    CudaCheck(cudaGraphLaunch(recording.graph, stream_), "cudaGraphLaunch");
    ++recording_counts_.replayed;
    return recording.result;
  }
  if (recording.graph != nullptr) CudaCheck(cudaGraphExecDestroy(recording.graph), "destroy graph");
  recording.graph = nullptr;
  if (recording.epoch != allocation_epoch_) {
    // Run eagerly first: the buffers grow now, never while a graph is captured.
    recording.result = operations();
    recording.epoch = allocation_epoch_;
    return recording.result;
  }
  cudaGraph_t graph = nullptr;
  CudaCheck(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
  recording.result = operations();
  CudaCheck(cudaStreamEndCapture(stream_, &graph), "end capture");
  CudaCheck(cudaGraphInstantiate(&recording.graph, graph, 0), "cudaGraphInstantiate");
  CudaCheck(cudaGraphDestroy(graph), "cudaGraphDestroy");
  ++recording_counts_.captured;
  spdlog::debug("captured a CUDA graph of the forward pass for key {}", key);
  CudaCheck(cudaGraphLaunch(recording.graph, stream_), "cudaGraphLaunch");
  return recording.result;
}

void CudaBackend::Embed(const Matrix& table, std::span<const int32_t> tokens, MatrixView out) {
  const int32_t* device_tokens = batch_inputs_.Tokens(tokens);
  if (device_tokens == nullptr) device_tokens = tokens_.Upload(tokens, stream_);
  kernels::Embed(static_cast<const uint16_t*>(table.view.data), device_tokens,
                 static_cast<int64_t>(tokens.size()), table.view.cols, Floats(out), stream_);
  CheckLaunch("Embed");
}

void CudaBackend::Norm(NormKind kind, float eps, MatrixView x, const Matrix& weight,
                       const Matrix* bias, MatrixView out) {
  if (out.dtype == DType::kBF16) {
    kernels::Norm(kind == NormKind::kLayer, eps, Floats(x), x.rows, x.cols, Floats(weight),
                  OptionalFloats(bias), static_cast<uint16_t*>(out.data), stream_);
  } else {
    kernels::Norm(kind == NormKind::kLayer, eps, Floats(x), x.rows, x.cols, Floats(weight),
                  OptionalFloats(bias), Floats(out), stream_);
  }
  CheckLaunch("Norm");
}

void CudaBackend::Linear(MatrixView x, const Matrix& weight, const Matrix* bias, MatrixView out) {
  const int out_features = static_cast<int>(weight.view.rows);
  const int in_features = static_cast<int>(weight.view.cols);
  const int rows = static_cast<int>(x.rows);
  const float alpha = 1.0f, beta = 0.0f;
  // Weights are BF16 (Upload); fp32 inputs are converted first. Row-major out = x·Wᵀ is
  // column-major outᵀ = W_colᵀ·x_col.
  const void* x_bf16 = x.data;
  if (x.dtype != DType::kBF16) {
    uint16_t* converted = bf16_activations_.Reserve(x.rows * x.cols);
    kernels::FloatToBf16(Floats(x), converted, x.rows * x.cols, stream_);
    CheckLaunch("FloatToBf16");
    x_bf16 = converted;
  }
  CublasCheck(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out_features, rows, in_features,
                           &alpha, weight.view.data, CUDA_R_16BF, in_features, x_bf16, CUDA_R_16BF,
                           in_features, &beta, out.data, CUDA_R_32F, out_features,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              "Linear");
  if (const float* bias_data = OptionalFloats(bias)) {
    kernels::AddBias(Floats(out), bias_data, x.rows, out_features, stream_);
    CheckLaunch("AddBias");
  }
}

void CudaBackend::Add(MatrixView accumulate, MatrixView x) {
  kernels::Add(Floats(accumulate), Floats(x), accumulate.rows * accumulate.cols, stream_);
  CheckLaunch("Add");
}

void CudaBackend::HeadRmsNorm(MatrixView x, int64_t head_dim, const Matrix& weight, float eps) {
  kernels::HeadRmsNorm(Floats(x), x.rows, x.cols, head_dim, Floats(weight), eps, stream_);
  CheckLaunch("HeadRmsNorm");
}

void CudaBackend::Rope(MatrixView x, int64_t head_dim, std::span<const int64_t> positions,
                       double theta) {
  const int64_t* device_positions = batch_inputs_.Positions(positions);
  if (device_positions == nullptr) device_positions = row_indices_.Upload(positions, stream_);
  kernels::Rope(Floats(x), x.rows, x.cols, head_dim, device_positions, theta, stream_);
  CheckLaunch("Rope");
}

void CudaBackend::LogSigmoidGate(MatrixView x, float gate_bias) {
  kernels::LogSigmoidGate(Floats(x), x.rows * x.cols, gate_bias, stream_);
  CheckLaunch("LogSigmoidGate");
}

void CudaBackend::SwiGlu(MatrixView gate_up, MatrixView out) {
  if (out.dtype == DType::kBF16) {
    kernels::SwiGlu(Floats(gate_up), out.rows, out.cols, static_cast<uint16_t*>(out.data), stream_);
  } else {
    kernels::SwiGlu(Floats(gate_up), out.rows, out.cols, Floats(out), stream_);
  }
  CheckLaunch("SwiGlu");
}

void CudaBackend::GeluTanh(MatrixView x) {
  kernels::GeluTanh(Floats(x), x.rows * x.cols, stream_);
  CheckLaunch("GeluTanh");
}

void CudaBackend::GatherRows(MatrixView x, std::span<const int64_t> rows, MatrixView out) {
  const int64_t* device_rows = batch_inputs_.LogitRows(rows);
  if (device_rows == nullptr) device_rows = row_indices_.Upload(rows, stream_);
  kernels::GatherRows(Floats(x), device_rows, static_cast<int64_t>(rows.size()), x.cols,
                      Floats(out), stream_);
  CheckLaunch("GatherRows");
}

void CudaBackend::SplitColumns(MatrixView x, std::span<const MatrixView> parts) {
  static_assert(kMaxSplitParts <= kernels::SplitParts::kMaxParts);
  kernels::SplitParts split;
  for (const MatrixView& part : parts) {
    split.out[split.count] = Floats(part);
    split.widths[split.count++] = part.cols;
  }
  kernels::SplitColumns(Floats(x), x.rows, x.cols, split, stream_);
  CheckLaunch("SplitColumns");
}

void CudaBackend::PowerAttention(const PowerAttentionArgs& args) {
  const kernels::AttentionRows rows{Floats(args.q), Floats(args.k), Floats(args.v),
                                    static_cast<const float*>(args.log_gate.data),
                                    Floats(args.out)};
  const kernels::LayerOffsets offsets = LayerOffsets(args.layer);
  std::vector<kernels::PrefillSegment> prefill;
  for (const AttentionSegment& segment : args.segments) {
    if (segment.num_rows > 1) {
      std::byte* state = SlotData(segment.state_slot) + offsets.state;
      prefill.push_back({segment.first_row, segment.num_rows, reinterpret_cast<float*>(state)});
    }
  }
  Prefill(rows, prefill);
  // The decode rows went up in BeginBatch, unless the caller did not go through it.
  int64_t count = 0;
  const kernels::DecodeRow* device_rows = batch_inputs_.DecodeRows(args.segments, &count);
  if (device_rows == nullptr) {
    const std::vector<kernels::DecodeRow> decode = DecodeRows(args.segments);
    count = static_cast<int64_t>(decode.size());
    device_rows = decode_rows_.Upload(decode, stream_);
  }
  if (count > 0) {
    float* scratch =
        decode_scratch_.ReserveZeroed(kernels::DecodeScratchFloats(shape_, count), stream_);
    const bool folds = AnyFoldsBuffers(args.segments);
    if (folds && !FoldsFullBuffersInDecode()) {
      // Its buffers would be emptied with nothing folded: the tokens lost.
      spdlog::critical(
          "PowerAttention: a decode row folds its buffers in the step, which this "
          "state's decode kernels cannot do");
      std::abort();
    }
    kernels::PowerDecode(shape_, rows, device_rows, count, offsets,
                         layout_.dtype == StateDType::kBFloat16, scratch, stream_,
                         SlotData(PaddingStateSlot()), folds);
    CheckLaunch("PowerDecode");
  }
}

kernels::LayerOffsets CudaBackend::LayerOffsets(int64_t layer) const {
  return {layout_.HeadOffset(layer, 0) * layout_.ElementBytes(), layout_.BufferOffset(layer, 0)};
}

void CudaBackend::Prefill(const kernels::AttentionRows& rows,
                          std::vector<kernels::PrefillSegment> segments) {
  if (segments.empty()) return;
  const int64_t layer_elements = layout_.num_kv_heads * layout_.ElementsPerHead();
  // A bf16 state is rounded once at the end, as on the CPU: the tensor-core prefill keeps it in
  // fp32 registers between its chunks; other paths prefill an fp32 copy.
  const bool widen = layout_.dtype == StateDType::kBFloat16 &&
                     !kernels::UsesTensorCorePrefill(shape_.head_dim, shape_.degree);
  std::vector<uint16_t*> stored(segments.size());
  if (widen) {
    float* widened = widened_states_.Reserve(segments.size() * layer_elements);
    for (size_t i = 0; i < segments.size(); ++i) {
      stored[i] = reinterpret_cast<uint16_t*>(segments[i].state);
      segments[i].state = widened + i * layer_elements;
      kernels::Bf16ToFloat(stored[i], segments[i].state, layer_elements, stream_);
    }
  }
  const bool with_outputs = rows.out != nullptr;
  const std::vector<kernels::PrefillChunk> chunks =
      kernels::PlanPrefill(shape_, segments, with_outputs);
  const int64_t chunk_count = static_cast<int64_t>(chunks.size());
  float* workspace = prefill_workspace_.Reserve(
      kernels::PrefillWorkspaceFloats(shape_, chunk_count, with_outputs));
  kernels::PowerPrefill(shape_, rows, prefill_segments_.Upload(segments, stream_),
                        static_cast<int64_t>(segments.size()),
                        prefill_chunks_.Upload(chunks, stream_), chunk_count, workspace, stream_);
  CheckLaunch("PowerPrefill");
  for (size_t i = 0; widen && i < segments.size(); ++i) {
    kernels::FloatToBf16(segments[i].state, stored[i], layer_elements, stream_);
  }
}

void CudaBackend::FoldDecodeBuffers(std::span<const BufferedSession> sessions) {
  // Folding a buffer is prefilling its tokens into the state: gather them into rows and advance
  // the states over them, no queries, no outputs.
  std::vector<kernels::BufferedRows> gathered;
  int64_t rows = 0;
  for (const BufferedSession& session : sessions) {
    gathered.push_back({rows, SlotData(session.state_slot), session.tokens});
    rows += session.tokens;
  }
  const int64_t kv_width = layout_.num_kv_heads * layout_.head_dim;
  float* k = fold_keys_.Reserve(rows * kv_width);
  float* v = fold_values_.Reserve(rows * kv_width);
  float* log_gate = fold_log_gates_.Reserve(rows * layout_.num_kv_heads);
  const kernels::BufferedRows* device_sessions = fold_sessions_.Upload(gathered, stream_);
  for (int64_t layer = 0; layer < layout_.num_layers; ++layer) {
    const kernels::LayerOffsets offsets = LayerOffsets(layer);
    kernels::GatherDecodeBuffers(shape_, device_sessions, static_cast<int64_t>(gathered.size()),
                                 offsets, k, v, log_gate, stream_);
    CheckLaunch("GatherDecodeBuffers");
    std::vector<kernels::PrefillSegment> segments;
    for (const kernels::BufferedRows& session : gathered) {
      segments.push_back(
          {session.first_row, session.tokens,
           reinterpret_cast<float*>(static_cast<std::byte*>(session.slot) + offsets.state)});
    }
    Prefill({nullptr, k, v, log_gate, nullptr}, std::move(segments));
  }
}

bool CudaBackend::FoldsFullBuffersInDecode() const {
  return kernels::FoldsInDecode(shape_, layout_.dtype == StateDType::kBFloat16);
}

void CudaBackend::Sample(MatrixView logits, std::span<const RowSampling> rows,
                         std::span<SampledToken> out) {
  const int64_t count = static_cast<int64_t>(rows.size());
  std::vector<kernels::SampleRowParams> params(count);
  std::vector<int32_t> penalized;
  for (int64_t r = 0; r < count; ++r) {
    const RowSampling& row = rows[r];
    kernels::SampleRowParams& p = params[r];
    p.temperature = row.temperature;
    p.top_k = row.top_k;
    p.top_p = row.top_p;
    p.min_p = row.min_p;
    p.repetition_penalty = row.repetition_penalty;
    p.uniform = row.uniform;
    p.penalized_begin = static_cast<int64_t>(penalized.size());
    if (row.repetition_penalty != 1.0f) {
      penalized.insert(penalized.end(), row.penalized.begin(), row.penalized.end());
    }
    p.penalized_end = static_cast<int64_t>(penalized.size());
  }
  const int32_t* device_penalized = nullptr;
  float* scratch = nullptr;
  if (!penalized.empty()) {
    device_penalized = penalized_tokens_.Upload(penalized, stream_);
    scratch = penalized_logits_.Reserve(count * logits.cols);
  }
  int32_t* tokens = sampled_tokens_.Reserve(count);
  float* logprobs = sampled_logprobs_.Reserve(count);
  kernels::SampleRows(
      Floats(logits), count, logits.cols,
      sample_params_.Upload(std::span<const kernels::SampleRowParams>(params), stream_),
      device_penalized, scratch, tokens, logprobs, stream_);
  CudaCheck(cudaGetLastError(), "sampling kernel");
  std::vector<int32_t> host_tokens(count);
  std::vector<float> host_logprobs(count);
  CudaCheck(cudaMemcpyAsync(host_tokens.data(), tokens, count * sizeof(int32_t),
                            cudaMemcpyDeviceToHost, stream_),
            "copy sampled tokens");
  CudaCheck(cudaMemcpyAsync(host_logprobs.data(), logprobs, count * sizeof(float),
                            cudaMemcpyDeviceToHost, stream_),
            "copy sampled log-probs");
  Synchronize();
  for (int64_t r = 0; r < count; ++r) out[r] = {host_tokens[r], host_logprobs[r]};
}

}  // namespace sympow
