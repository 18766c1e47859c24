// sympow-cli: local tools around a sympow model (generation, random models for benchmarks).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "clients/cli/commands.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sympow-cli COMMAND [flags]\n"
      "  generate      stream tokens from a model on the CPU (--model, --prompt_ids, sampling "
      "flags)\n"
      "  perplexity    next-token loss of a model over a text file (--model, --file)\n"
      "  random-model  write a model with random weights (--out, --preset)\n"
      "Run with --helpfull for every flag.");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  // Logs go to stderr: stdout carries only generated text, so it can be piped.
  spdlog::set_default_logger(spdlog::stderr_color_mt("sympow-cli"));
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  const std::string command = positional.size() > 1 ? positional[1] : "";
  if (positional.size() > 2) {
    std::fprintf(stderr, "error: unexpected argument '%s'\n", positional[2]);
    return 2;
  }
  if (command == "generate") return sympow::cli::RunGenerate();
  if (command == "random-model") return sympow::cli::RunRandomModel();
  if (command == "perplexity") return sympow::cli::RunPerplexity();
  std::fprintf(stderr, "%s\n", absl::ProgramUsageMessage().data());
  return 2;
}
