// sympow-cli's subcommands; each reads its Abseil flags and returns the process exit code.
#pragma once

#include <string>

#include "absl/flags/declare.h"

// The model directory, shared by the commands that load one (defined in generate_command.cc).
ABSL_DECLARE_FLAG(std::string, model);

namespace sympow::cli {

int RunGenerate();
int RunRandomModel();
int RunPerplexity();

}  // namespace sympow::cli
