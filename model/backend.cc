#include "model/backend.h"

#include <vector>

#include "model/loss.h"

namespace sympow {

void Backend::Sample(MatrixView logits, std::span<const RowSampling> rows,
                     std::span<SampledToken> out) {
  std::vector<float> host(logits.rows * logits.cols);
  CopyToHost(logits, host.data());
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::span<const float> row(host.data() + r * logits.cols, logits.cols);
    out[r].token = SampleRow(row, rows[r]);
    out[r].logprob = static_cast<float>(-NegativeLogLikelihood(row, out[r].token));
  }
}

}  // namespace sympow
