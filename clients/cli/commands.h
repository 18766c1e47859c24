// sympow-cli's subcommands; each reads its Abseil flags and returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace sympow::cli {

// Local (with --model).
int RunLocalGenerate();
int RunPerplexity();
int RunRandomModel();

// Against a sympow-server (--server).
int RunRemoteGenerate();
int RunChat();
int RunAppend();
int RunSessions(const std::vector<std::string>& args);
int RunTokenize(const std::vector<std::string>& args);
int RunHealth();

}  // namespace sympow::cli
