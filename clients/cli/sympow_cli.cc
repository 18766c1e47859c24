// sympow-cli: a client for sympow-server (chat, generate, sessions, tokenize) and local tools
// (generate --model, perplexity, random-model). Flags may come before or after the command.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "clients/cli/cli_flags.h"
#include "clients/cli/commands.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sympow-cli COMMAND [args] [flags]\n"
      "Against a server (--server, default localhost:50051):\n"
      "  chat                      interactive streaming chat on a session (--session to resume)\n"
      "  generate                  stream a completion (--prompt; --session to continue one)\n"
      "  append --session ID (--file F | --prompt TEXT)   add text to a session's state\n"
      "  sessions create|list|show|fork|delete [ID]\n"
      "  tokenize TEXT\n"
      "  health                    exit 0 when the server reports SERVING (grpc health)\n"
      "Local:\n"
      "  generate --model DIR      generate on this machine's CPU\n"
      "  perplexity --model DIR --file F   next-token loss over a text file\n"
      "  random-model --out DIR    write a model with random weights (--preset)\n"
      "Run with --helpfull for every flag.");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  // Logs go to stderr: stdout carries only generated text, so it can be piped.
  spdlog::set_default_logger(spdlog::stderr_color_mt("sympow-cli"));
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  const std::string command = positional.size() > 1 ? positional[1] : "";
  const std::vector<std::string> args(positional.begin() + std::min<size_t>(2, positional.size()),
                                      positional.end());
  using namespace sympow::cli;
  const bool takes_args = command == "sessions" || command == "tokenize";
  if (!takes_args && !args.empty()) {
    std::fprintf(stderr, "error: unexpected argument '%s'\n", args[0].c_str());
    return 2;
  }
  if (command == "generate")
    return absl::GetFlag(FLAGS_model).empty() ? RunRemoteGenerate() : RunLocalGenerate();
  if (command == "chat") return RunChat();
  if (command == "append") return RunAppend();
  if (command == "sessions") return RunSessions(args);
  if (command == "tokenize") return RunTokenize(args);
  if (command == "health") return RunHealth();
  if (command == "perplexity") return RunPerplexity();
  if (command == "random-model") return RunRandomModel();
  std::fprintf(stderr, "%s\n", absl::ProgramUsageMessage().data());
  return 2;
}
