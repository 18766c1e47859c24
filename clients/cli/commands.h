// sympow-cli's subcommands; each reads its Abseil flags and returns the process exit code.
#pragma once

namespace sympow::cli {

int RunGenerate();
int RunRandomModel();

}  // namespace sympow::cli
