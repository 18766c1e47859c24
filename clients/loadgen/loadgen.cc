// sympow-loadgen: the serving benchmark. For each concurrency level, that many virtual users
// (clients/loadgen/workload.h) chat with a running sympow-server at once; the report gives time to
// first token and inter-token latency percentiles, aggregate tokens/s, sessions held, device
// memory, the fraction of the decode bandwidth limit achieved, and the memory a KV-cache
// transformer of the same shape would need for the same sessions. Writes JSON (--out).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "clients/loadgen/virtual_user.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, server, "localhost:50051", "sympow-server address");
ABSL_FLAG(std::string, levels, "1,16,64,256,1024", "concurrent users, one run per level");
ABSL_FLAG(int64_t, turns, 4, "turns per user");
ABSL_FLAG(int64_t, reply_tokens, 128, "tokens generated per turn");
ABSL_FLAG(int64_t, system_prompt_tokens, 512, "the system prompt every session starts from");
ABSL_FLAG(int64_t, long_context_tokens, 100000, "the long document some users bring");
ABSL_FLAG(int64_t, long_context_every, 64, "one user in this many brings it; 0: none");
ABSL_FLAG(int64_t, user_tokens_max, 256, "longest user message (shortest: 16)");
ABSL_FLAG(double, copy_tbps, 0.0,
          "the GPU's measured copy bandwidth (bench/results/kernels.json), for bw_fraction");
ABSL_FLAG(std::string, commit, "", "the git commit measured, recorded in the report");
ABSL_FLAG(std::string, out, "serving.json", "where to write the JSON report");

namespace sympow::loadgen {
namespace {

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  const size_t k = std::min(values.size() - 1, static_cast<size_t>(q * values.size()));
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}

// Bytes a softmax-attention transformer of the model's shape keeps for `tokens` of context:
// K and V for every layer and kv head, in BF16.
int64_t KvCacheBytes(const nlohmann::json& config, int64_t tokens) {
  return tokens * config["num_layers"].get<int64_t>() * config["num_kv_heads"].get<int64_t>() *
         config["head_dim"].get<int64_t>() * 2 * 2;
}

nlohmann::json RunLevel(v1::Sympow::Stub& stub, const Workload& workload, int64_t users,
                        const v1::ModelInfo& info, const nlohmann::json& config) {
  std::vector<UserTimings> results(users);
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t user = 0; user < users; ++user) {
    threads.emplace_back([&, user] { results[user] = RunUser(stub, workload, user); });
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> ttft, itl;
  int64_t tokens = 0, context = 0, failed = 0;
  for (const UserTimings& r : results) {
    ttft.insert(ttft.end(), r.ttft_ms.begin(), r.ttft_ms.end());
    itl.insert(itl.end(), r.itl_ms.begin(), r.itl_ms.end());
    tokens += r.generated_tokens;
    context += r.context_tokens;
    if (!r.error.ok()) {
      ++failed;
      spdlog::warn("user failed: {}", r.error.ToString());
    }
  }
  grpc::ClientContext context_after;
  v1::ModelInfo after;
  stub.GetModelInfo(&context_after, v1::GetModelInfoRequest(), &after);
  const double tokens_per_s = tokens / seconds;
  // Each decoded token reads and writes its session's whole state once.
  const double state_traffic = 2.0 * info.state_bytes_per_session() * tokens_per_s;
  const double copy = absl::GetFlag(FLAGS_copy_tbps) * 1e12;
  nlohmann::json level = {
      {"sessions", users},
      {"failed_sessions", failed},
      {"ttft_p50_ms", Percentile(ttft, 0.5)},
      {"ttft_p99_ms", Percentile(ttft, 0.99)},
      {"itl_p50_ms", Percentile(itl, 0.5)},
      {"itl_p99_ms", Percentile(itl, 0.99)},
      {"tokens_per_s", tokens_per_s},
      {"seconds", seconds},
      {"gpu_mem_bytes", after.device_memory_bytes()},
      {"state_bytes_held", users * info.state_bytes_per_session()},
      {"kv_cache_bytes_same_sessions", KvCacheBytes(config, context)},
      {"bw_fraction", copy > 0 ? nlohmann::json(state_traffic / copy) : nlohmann::json(nullptr)}};
  spdlog::info("{} users: TTFT p50 {:.1f} ms p99 {:.1f} ms, ITL p50 {:.1f} ms p99 {:.1f} ms, "
               "{:.0f} tokens/s, {} failed",
               users, level["ttft_p50_ms"].get<double>(), level["ttft_p99_ms"].get<double>(),
               level["itl_p50_ms"].get<double>(), level["itl_p99_ms"].get<double>(), tokens_per_s,
               failed);
  return level;
}

int Run() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(64 << 20);
  auto stub = v1::Sympow::NewStub(grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), arguments));
  grpc::ClientContext context;
  v1::ModelInfo info;
  if (grpc::Status status = stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
      !status.ok()) {
    spdlog::critical("--server={}: {}", absl::GetFlag(FLAGS_server), status.error_message());
    return 1;
  }
  const nlohmann::json config = nlohmann::json::parse(info.config_json());
  const Workload workload({.vocab_size = info.vocab_size(),
                           .system_prompt_tokens = absl::GetFlag(FLAGS_system_prompt_tokens),
                           .long_context_tokens = absl::GetFlag(FLAGS_long_context_tokens),
                           .long_context_every = absl::GetFlag(FLAGS_long_context_every),
                           .user_tokens_max = absl::GetFlag(FLAGS_user_tokens_max),
                           .reply_tokens = absl::GetFlag(FLAGS_reply_tokens),
                           .turns = absl::GetFlag(FLAGS_turns)});
  nlohmann::json report = {{"commit", absl::GetFlag(FLAGS_commit)},
                           {"backend", info.backend()},
                           {"model", info.model_path()},
                           {"state_bytes_per_session", info.state_bytes_per_session()},
                           {"levels", nlohmann::json::array()}};
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_levels), ',')) {
    int64_t users = 0;
    if (!absl::SimpleAtoi(text, &users) || users <= 0) {
      spdlog::critical("--levels: '{}' is not a positive number", std::string(text));
      return 1;
    }
    report["levels"].push_back(RunLevel(*stub, workload, users, info, config));
  }
  std::ofstream(absl::GetFlag(FLAGS_out)) << report.dump(2) << "\n";
  spdlog::info("wrote {}", absl::GetFlag(FLAGS_out));
  return 0;
}

}  // namespace
}  // namespace sympow::loadgen

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return sympow::loadgen::Run();
}
