// A short fingerprint of a loaded model, so saved session states are only ever loaded into the
// model that made them.
#pragma once

#include <string>

#include "model/engine.h"

namespace sympow {

// Hex of a 64-bit checksum over config.json's fields and every tensor's name, dtype, shape and
// its first and last 4 KiB of data: cheap at start-up even for large checkpoints.
std::string ModelFingerprint(const LoadedModel& model);

}  // namespace sympow
